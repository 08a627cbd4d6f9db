// The package as a consumer gets it: `npm pack`, then `npm install` of the
// tarball into a fresh project (offline: the dependencies come from the npm
// cache `npm ci` filled) with no C toolchain on PATH, then plain JavaScript
// without a TypeScript loader talks to a console, and tsc type-checks a
// TypeScript consumer with moduleResolution node16 and bundler.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { startServer } from '../unit/console-fake-backend.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const version = (pkg: string) => (JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;

const CONSUMER_JS = `
import { Client, connect, NotRunningError, DEFAULT_URLS, parseConfig, EMBEDDED_DEFAULT_CONFIG, VERSION } from 'northstar-ts';
import { Client as Client2, ClientError } from 'northstar-ts/client';
const client = await Client.connect(process.argv[2]);
const ident = await client.ident();
const list = await client.list();
let error;
try {
  await client.start('nosuch:0.0.1');
} catch (e) {
  error = { client: e instanceof ClientError, kind: e.kind, code: e.code, message: e.message };
}
client.close();
const c = await connect(process.argv[2], { subscribe: true });
let handle;
try {
  await c.container('hello-world:0.0.1').kill('USR1');
} catch (e) {
  handle = e instanceof NotRunningError;
}
c.close();
console.log(JSON.stringify({
  ident, list, error, handle, same: Client === Client2, urls: DEFAULT_URLS, version: VERSION,
  bind: parseConfig(EMBEDDED_DEFAULT_CONFIG).console.global.bind,
}));
`;

const CONSUMER_TS = `
import { Client, ClientError, connect, type Container, type ContainerData, type ExitStatus, type Notification } from 'northstar-ts';
import { Client as Client2 } from 'northstar-ts/client';

export async function main(url: string): Promise<number> {
  const client: Client = await Client.connect(url, { subscribe: true });
  const d: ContainerData = await client.inspect('hello-world:0.0.1', ['cpu', 'memory']);
  const pid: number | undefined = d.process?.pid;
  // @ts-expect-error: mounted is a boolean (the declarations are real types, not any)
  const wrong: string = d.mounted;
  for await (const n of client.notifications()) {
    const note: Notification = n;
    if (note !== 'shutdown' && 'exit' in note) break;
  }
  const c: Container = (await connect(url, { subscribe: true })).container('hello-world:0.0.1');
  await c.start({ env: { A: '1' }, signal: AbortSignal.timeout(1000) });
  const status: ExitStatus | null = await c.stop({ graceMs: 5000 });
  const again: Client2 = client;
  again.close();
  return status === null ? 0 : pid ?? (wrong.length + (new ClientError('closed', 'x').kind === 'closed' ? 0 : 1));
}
`;

describe('the packed package', () => {
  test('installs offline without a C toolchain and works from plain JavaScript and TypeScript', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nstar-pkg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const npmEnv: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
    delete npmEnv.NODE_OPTIONS;

    // prepack (build:lib, build-js) prints on stdout before npm's JSON.
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, env: npmEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const packed = JSON.parse(out.slice(out.search(/^\[/m))) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    for (const f of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/client/index.js', 'dist/lib/client/index.d.ts', 'dist/cli/nstar.js', 'scripts/install.mjs']) {
      assert.ok(files.includes(f), `the tarball has ${f}`);
    }
    assert.ok(!files.some((f) => f.startsWith('test/')), 'no tests in the tarball');
    const tarball = join(dir, packed[0]!.filename);

    // A PATH with sh, node and npm only: no cc, make or python.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync('/bin/sh', join(bin, 'sh'));
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim(), join(bin, 'npm'));
    const project = join(dir, 'consumer');
    mkdirSync(project);
    const deps = { 'northstar-ts': `file:${tarball}`, typescript: version('typescript'), '@types/node': version('@types/node') };
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: deps }));
    writeFileSync(join(project, 'package-lock.json'), JSON.stringify(consumerLock(deps, `file:${tarball}`)));
    // npm ci from a lockfile needs no registry metadata, only the tarballs in the cache.
    const install = spawnSync('npm', ['ci', '--offline', '--foreground-scripts'], { cwd: project, env: { ...npmEnv, PATH: bin }, encoding: 'utf8' });
    assert.equal(install.status, 0, install.stdout + install.stderr);
    assert.match(install.stdout + install.stderr, /native parts of the runtime are not built/);
    assert.ok(!readdirSync(join(project, 'node_modules', 'northstar-ts')).includes('build'), 'no native build was tried');

    // Plain JavaScript, plain node: no TypeScript loader anywhere.
    const { url } = await startServer(t);
    writeFileSync(join(project, 'index.mjs'), CONSUMER_JS);
    // Asynchronously: the console answering it runs in this process.
    const run = await promisify(execFile)(process.execPath, ['index.mjs', url], { cwd: project, env: { PATH: bin }, encoding: 'utf8' });
    const r = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.equal(r.ident, 'extern:0.0.0');
    assert.deepEqual((r.list as string[]).sort(), ['crashing:0.0.1', 'hello-world:0.0.1', 'message:0.0.2']);
    assert.deepEqual(r.error, {
      client: true,
      kind: 'runtime',
      code: 'invalid_container',
      message: 'no container nosuch:0.0.1 is installed (`nstar list` shows the installed containers)',
    });
    assert.equal(r.same, true);
    assert.equal(r.handle, true, 'the Container handle and its error classes');
    assert.equal((r.urls as string[])[0], r.bind);

    // TypeScript, both module resolutions, our declarations checked too.
    writeFileSync(join(project, 'index.ts'), CONSUMER_TS);
    const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
    for (const [module, resolution] of [['node16', 'node16'], ['esnext', 'bundler']]) {
      const config = { compilerOptions: { target: 'es2022', module, moduleResolution: resolution, strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['index.ts'] };
      writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(config));
      const check = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: project, encoding: 'utf8' });
      assert.equal(check.status, 0, `tsc with moduleResolution ${resolution}:\n${check.stdout}${check.stderr}`);
    }
  });
});

/**
 * A lockfile for the consumer made from ours: our production dependencies
 * (the package's), typescript and @types/node, all resolvable by integrity
 * from the npm cache `npm ci` filled, and the package itself from the tarball.
 */
function consumerLock(deps: Record<string, string>, tarball: string): unknown {
  type Entry = { dev?: boolean; devOptional?: boolean; version?: string; [k: string]: unknown };
  const ours = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, Entry> };
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  const packages: Record<string, unknown> = { '': { name: 'consumer', dependencies: deps } };
  const wanted = new Set(['node_modules/typescript', 'node_modules/@types/node', 'node_modules/undici-types']);
  for (const [path, e] of Object.entries(ours.packages)) {
    if (path === '' || (e.dev && !wanted.has(path))) continue;
    const { dev: _d, devOptional: _o, ...rest } = e;
    // Without `resolved` npm asks the registry where the tarball is; the cache knows it by URL.
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (e.version && !e.resolved && !('link' in e)) rest.resolved = `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${e.version}.tgz`;
    packages[path] = rest;
  }
  packages['node_modules/northstar-ts'] = {
    version: pkg.version,
    resolved: tarball,
    hasInstallScript: true,
    dependencies: pkg.dependencies,
    bin: pkg.bin,
    engines: pkg.engines,
  };
  return { name: 'consumer', lockfileVersion: 3, requires: true, packages };
}
