// Container consoles for real: the example programs (examples/console,
// token-client, token-server) run in their sandbox (namespaces, pivot_root,
// their uid) and talk to our console server over the socketpair end passed as
// NORTHSTAR_CONSOLE. The runtime side is a fake backend whose kill signals
// the launched container, so this exercises the console without the machines.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launch, type LaunchedContainer } from '../../src/actors/launch/launch.js';
import { ConsoleServer, type RequestContext } from '../../src/console/server.js';
import type { Request, Response } from '../../src/console/protocol.js';
import type { ExitStatus } from '../../src/model/errors.js';
import { parseManifest, type Manifest } from '../../src/model/manifest.js';
import { native } from '../../src/native.js';
import { FakeBackend } from '../unit/console-fake-backend.js';
import { privileged } from './privileged.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const examples = join(repo, 'examples');
const needs = privileged({ loop: false, mksquashfs: false, tools: ['cc'] });

/** Kill requests signal the launched containers. */
class ContainerBackend extends FakeBackend {
  readonly launched = new Map<string, LaunchedContainer>();

  override async request(req: Request, ctx: RequestContext): Promise<Response> {
    if (typeof req === 'object' && 'kill' in req) {
      const l = this.launched.get(req.kill.container);
      if (l) {
        l.kill(req.kill.signal);
        return { kill: { ok: { container: req.kill.container } } };
      }
    }
    return super.request(req, ctx);
  }
}

interface Running {
  container: string;
  manifest: Manifest;
  launched: LaunchedContainer;
  lines: string[];
  exited: Promise<ExitStatus>;
  /** Resolves with the first output line matching `re`. */
  line(re: RegExp): Promise<string>;
}

function workdir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-console-it-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Compiles examples/<name> statically into <dir>/<name>/root and launches it with a console. */
async function runExample(t: TestContext, dir: string, server: ConsoleServer, backend: ContainerBackend, name: string): Promise<Running> {
  const manifest = parseManifest(readFileSync(join(examples, name, 'manifest.yaml'), 'utf8'));
  const container = `${manifest.name}:${manifest.version}`;
  const base = join(dir, name);
  const root = join(base, 'root');
  for (const d of ['root', 'run', 'data', 'sockets']) mkdirSync(join(base, d), { recursive: true });
  execFileSync('cc', ['-static', '-O2', '-D_GNU_SOURCE', '-I', join(examples, 'lib'), '-o', join(root, manifest.init!.slice(1)), join(examples, name, 'main.c')]);

  const [runtimeEnd, containerEnd] = native().socketpair('stream');
  const handle = server.adopt(runtimeEnd, { container, permissions: manifest.console!.permissions });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const launched = await launch(
    {
      container,
      manifest,
      root,
      init: manifest.init!,
      args: manifest.args,
      env: { ...manifest.env, NORTHSTAR_NAME: manifest.name, NORTHSTAR_VERSION: manifest.version, NORTHSTAR_CONTAINER: container },
      runDir: join(base, 'run'),
      dataDir: join(base, 'data'),
      socketDir: join(base, 'sockets'),
      resources: {},
      consoleFd: containerEnd,
    },
    {
      output: (_stream, line) => {
        lines.push(line);
        for (const w of waiters.filter((x) => x.re.test(line))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      },
    },
  );
  backend.launched.set(container, launched);
  backend.containers.set(container, { repository: 'mem', mounted: true, pid: launched.pid, resource: false });
  // The console closes when the container exits (Northstar's stop token).
  const exited = launched.exited.finally(() => handle.close());
  t.after(async () => {
    launched.kill(9);
    await exited.catch(() => undefined);
  });
  launched.openGate();
  return {
    container,
    manifest,
    launched,
    lines,
    exited,
    line: (re) => {
      const l = lines.find((x) => re.test(x));
      return l !== undefined ? Promise.resolve(l) : new Promise((r) => waiters.push({ re, resolve: r }));
    },
  };
}

test('the console example gets answers within its permissions, permission_denied beyond them, and kills itself', needs, async (t) => {
  const backend = new ContainerBackend();
  const server = new ConsoleServer(backend);
  t.after(() => server.close());
  const connected: string[] = [];
  server.on('connected', (p: { type: string; container?: string }) => connected.push(p.container ?? ''));
  const c = await runExample(t, workdir(t), server, backend, 'console');
  const status = await c.exited;
  assert.deepEqual(status, { signalled: { signal: 15 } }, c.lines.join('\n'));
  assert.deepEqual(connected, ['console:0.0.1']);
  assert.ok(c.lines.includes('ident: {"response":{"ident":"console:0.0.1"}}'), c.lines.join('\n'));
  assert.ok(c.lines.includes('repositories: {"response":{"permission_denied":"repositories"}}'), c.lines.join('\n'));
  const list = c.lines.find((l) => l.startsWith('list: '))!;
  assert.ok(JSON.parse(list.slice(6)).response.list.includes('console:0.0.1'));
  const inspect = c.lines.find((l) => l.startsWith('inspect: '))!;
  assert.equal(JSON.parse(inspect.slice(9)).response.inspect.ok.data.process.pid, c.launched.pid);
  assert.ok(c.lines.includes('Killing console:0.0.1 with SIGTERM'));
  await new Promise((r) => setImmediate(r));
  assert.equal(server.connectionCount, 0, 'the console closed with the container');
});

test('a token created by token-client verifies at token-server through their consoles', needs, async (t) => {
  const backend = new ContainerBackend();
  const server = new ConsoleServer(backend);
  t.after(() => server.close());
  const dir = workdir(t);
  const srv = await runExample(t, dir, server, backend, 'token-server');
  await srv.line(/^Listening on /);
  const client = await runExample(t, dir, server, backend, 'token-client');
  assert.deepEqual(await client.exited, { exit: { code: 0 } }, client.lines.join('\n'));
  assert.ok(client.lines.includes('Received: yay!'), client.lines.join('\n'));
  assert.equal(await srv.line(/^Token of /), 'Token of token-client: {"response":{"token_verification":"Ok"}}');
  srv.launched.kill(15);
  assert.deepEqual(await srv.exited, { signalled: { signal: 15 } });
});
