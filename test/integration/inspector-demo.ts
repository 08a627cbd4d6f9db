// The real supervisor and container machines with the fake I/O actors of the
// machine tests (test/unit/machine-fakes.ts), watched by an inspector: what the
// browser test and the docs' screenshots (scripts/screenshots.ts) look at.
// The kernel side is covered by inspector-runtime.test.ts (a real daemon).
import { fromPromise } from 'xstate';
import { contentsOf, type Repository } from '../../src/actors/repository/index.js';
import { startInspector, type Inspector } from '../../src/inspector/inspector.js';
import type { NpkInfo } from '../../src/machines/plan.js';
import type { Request } from '../../src/machines/requests.js';
import { createSupervisor, request, whenReady, type InstallInput, type Supervisor } from '../../src/machines/supervisor.js';
import { FakeIo, FakeRepository, flush, manifest } from '../unit/machine-fakes.js';

/** An environment value that must never reach the page or a recording. */
export const SECRET = 'hunter2-secret-env-value';
export const HELLO = 'hello-world:0.0.1';

export interface Demo {
  inspector: Inspector;
  sup: Supervisor;
  io: FakeIo;
  ask(r: Request): Promise<unknown>;
  close(): Promise<void>;
}

export async function startDemo(opts: { history?: number } = {}): Promise<Demo> {
  const inspector = await startInspector({ bind: '127.0.0.1:0', ...opts });
  const io = new FakeIo();
  io.autoMount = true;
  io.autoUmount = true;
  io.autoRun = true;
  io.autoExit = true;
  const repo = new FakeRepository('default', [
    manifest('hello-world', '0.0.1', { env: { GREETING: SECRET } }),
    manifest('crashing', '0.0.1'),
  ]);
  const sup = createSupervisor({
    repositories: [contentsOf(repo as unknown as Repository)],
    config: { runDir: '/run/ns', dataDir: '/data', socketDir: '/sockets', verity: 'auto', loopDeviceTimeoutMs: 10_000, mountOnStart: [] },
    actors: {
      ...io.actors(),
      // One repository: every install goes to it.
      install: fromPromise<NpkInfo, InstallInput>(({ input }) => repo.insert(input.data)),
    },
    inspect: inspector.inspect,
  });
  sup.start();
  await whenReady(sup);
  const ask = async (r: Request) => {
    const v = await request(sup, r);
    await flush();
    return v;
  };
  return {
    inspector,
    sup,
    io,
    ask,
    async close() {
      sup.stop();
      await inspector.close();
    },
  };
}

/** Starts hello-world with a secret in its start environment too. */
export function startHello(d: Demo): Promise<unknown> {
  return d.ask({ type: 'start', container: HELLO, arguments: [], environment: { GREETING: SECRET } });
}
