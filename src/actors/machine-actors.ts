// The real I/O behind the machines' invoked actors: each adapter wraps one
// plain async module (mount pool, launch, cgroups) into an XState actor with
// the events of src/machines/contracts.ts. Tests of the machines replace these
// with fakes through `.provide()`; this file is what the runtime provides.
// Main thread.
import { fromCallback, fromPromise } from 'xstate';

import { Logger } from '../log.js';
import type { CGroups, Manifest } from '../model/manifest.js';
import type { LaunchSpec, Launched, MemoryEvent, MountInput, MountOutput, UmountInput } from '../machines/contracts.js';
import { RuntimeError } from '../model/errors.js';

/** What the adapters need from the runtime's I/O modules. */
export interface Io {
  mount(input: MountInput): Promise<MountOutput>;
  umount(input: UmountInput): Promise<void>;
  launch(spec: LaunchSpec): Promise<Launched>;
  cgroups(container: string, manifest: Manifest, pid: number): Promise<ContainerCgroupsHandle>;
  /** Called for every process the runtime starts and ends (journal, debug commands, consoles). */
  onSpawned?(container: string, pid: number): void;
  onExited?(container: string, pid: number): void;
}

export interface ContainerCgroupsHandle {
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  onOom(cb: (m: MemoryEvent) => void): void;
  destroy(): Promise<void>;
}

const log = new Logger('actors');

/** Errors crossing into machine events are plain data. */
function errorData(e: unknown): { code: string; message: string } {
  if (e instanceof RuntimeError) return { code: e.code, message: e.message };
  const err = e as { code?: string; message?: string };
  return { code: err?.code ?? 'unexpected', message: err?.message ?? String(e) };
}

export function makeActors(io: Io) {
  return {
    mount: fromPromise<MountOutput, MountInput>(({ input }) => io.mount(input)),
    umount: fromPromise<void, UmountInput>(({ input }) => io.umount(input)),

    process: fromCallback<{ type: 'gate.open' } | { type: 'signal'; signal: number }, LaunchSpec>(
      ({ input, sendBack, receive }) => {
        let launched: Launched | undefined;
        let gateRequested = false;
        const pendingSignals: number[] = [];
        receive((e) => {
          if (e.type === 'gate.open') {
            gateRequested = true;
            launched?.openGate();
          } else if (launched) launched.kill(e.signal);
          else pendingSignals.push(e.signal);
        });
        io.launch(input).then(
          (l) => {
            launched = l;
            io.onSpawned?.(input.container, l.pid);
            sendBack({ type: 'process.spawned', pid: l.pid });
            if (gateRequested) l.openGate();
            for (const s of pendingSignals.splice(0)) l.kill(s);
            l.started.then(
              ({ phases }) => sendBack({ type: 'process.started', pid: l.pid, phases }),
              (e) => log.debug(`${input.container}: start did not complete: ${errorData(e).message}`),
            );
            l.exited.then(
              (status) => {
                io.onExited?.(input.container, l.pid);
                sendBack({ type: 'process.exit', status });
              },
              (e) => sendBack({ type: 'process.failed', error: errorData(e) }),
            );
          },
          (e) => sendBack({ type: 'process.failed', error: errorData(e) }),
        );
        // The machine leaves the started state only after process.exit or a
        // failed launch, so there is nothing left to kill here.
        return () => undefined;
      },
    ),

    cgroups: fromCallback<{ type: 'freeze' } | { type: 'thaw' }, { container: string; manifest: Manifest; pid: number }>(
      ({ input, sendBack, receive }) => {
        let handle: ContainerCgroupsHandle | undefined;
        let stopped = false;
        const queue: ('freeze' | 'thaw')[] = [];
        const apply = (op: 'freeze' | 'thaw') =>
          handle?.[op]().then(
            () => sendBack({ type: op === 'freeze' ? 'cgroups.frozen' : 'cgroups.thawed' }),
            (e) => sendBack({ type: 'cgroups.failed', error: errorData(e) }),
          );
        receive((e) => (handle ? apply(e.type) : queue.push(e.type)));
        io.cgroups(input.container, input.manifest, input.pid).then(
          (h) => {
            handle = h;
            if (stopped) {
              void h.destroy();
              return;
            }
            h.onOom((memory) => sendBack({ type: 'cgroups.oom', memory }));
            sendBack({ type: 'cgroups.ready' });
            for (const op of queue.splice(0)) void apply(op);
          },
          (e) => sendBack({ type: 'cgroups.failed', error: errorData(e) }),
        );
        return () => {
          stopped = true;
          void handle?.destroy().catch((e) => log.warn(`${input.container}: cgroup removal: ${errorData(e).message}`));
        };
      },
    ),
  };
}

export type { CGroups };
