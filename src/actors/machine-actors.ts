// The real I/O behind the machines' invoked actors: each adapter wraps one
// plain async module (mount pool, launch, cgroups) into an XState actor with
// the events of src/machines/contracts.ts. Tests of the machines replace these
// with fakes through `.provide()`; this file is what the runtime provides.
// Main thread.
import { rm } from 'node:fs/promises';

import { fromCallback, fromPromise } from 'xstate';

import { Logger } from '../log.js';
import { type CGroups, isRealtime, type Manifest } from '../model/manifest.js';
import type { ContainerCgroupsHandle, LaunchSpec, Launched, MountInput, MountOutput, UmountInput } from '../machines/contracts.js';
import type { ActorFact, CgroupsCommand, ProcessCommand, Statistics } from '../machines/container-events.js';
import type { NpkInfo } from '../machines/plan.js';
import { fail, failureData, ok } from '../machines/reply.js';
import type { InstallInput, UninstallInput } from '../machines/supervisor.js';
import { errors } from '../model/errors.js';
import { npkInfo, type Repository } from './repository/index.js';

/** What the adapters need from the runtime's I/O modules. */
export interface Io {
  mount(input: MountInput): Promise<MountOutput>;
  umount(input: UmountInput): Promise<void>;
  launch(spec: LaunchSpec): Promise<Launched>;
  cgroups(container: string, manifest: Manifest, pid: number): Promise<ContainerCgroupsHandle>;
  /**
   * Optional: a start of `container` is under way — begin creating its
   * cgroups before the pid exists (they overlap the clone of its init);
   * cgroups() then takes them over. The returned function removes them when
   * no cgroups() call follows (the launch failed).
   */
  prepareCgroups?(container: string, manifest: Manifest): () => void;
  /** Called after every mount and umount (the crash journal records what is mounted where). */
  onMounted?(input: MountInput, output: MountOutput): void;
  onUnmounted?(input: UmountInput): void;
  /** Called for every process the runtime starts and ends (journal, debug commands, consoles). */
  onSpawned?(container: string, pid: number): void;
  onExited?(container: string, pid: number): void;
  /**
   * Runs one debug command (config `debug.commands`, already split, `<PID>` and
   * `<CONTAINER>` substituted) after a container's init exists; its output is
   * logged at info with the container as target. Not killed at the exit.
   */
  spawnDebug?(container: string, argv: string[]): void;
  /** Removes a persistent data directory (uninstall with wipe); defaults to rm -rf. */
  wipe?(dir: string): Promise<void>;
  /** The repositories by id: the supervisor names the one an install or uninstall goes to. */
  repositories?: ReadonlyMap<string, Repository>;
}

export interface ActorOptions {
  /** config `debug.commands`: "strace -c -p <PID>" style templates. */
  debugCommands?: string[];
}

/** The real modules behind an Io (structural: tests pass fakes). */
export interface IoModules {
  /** src/actors/mount/mount-pool.ts MountPool. */
  pool: { mount(input: MountInput): Promise<MountOutput>; umount(input: UmountInput): Promise<void> };
  /** src/actors/cgroups/cgroups.ts CgroupTree. */
  tree: {
    container(container: string, cgroups: CGroups | undefined, pid: number, opts?: { realtime?: boolean }): Promise<ContainerCgroupsHandle>;
    prepare?(container: string, cgroups: CGroups | undefined, opts?: { realtime?: boolean }): () => void;
  };
  /** src/actors/launch/launch.ts launch (with its options bound). */
  launch(spec: LaunchSpec): Promise<Launched>;
}

/**
 * An Io over the real modules; `extra` adds the hooks (journal, debug
 * commands, wipe). A fifo/round_robin container gets an RT budget in its cpu
 * cgroup (CONFIG_RT_GROUP_SCHED), or sched_setscheduler would fail inside it.
 */
export function ioFrom(m: IoModules, extra: Partial<Io> = {}): Io {
  return {
    mount: (input) => m.pool.mount(input),
    umount: (input) => m.pool.umount(input),
    launch: (spec) => m.launch(spec),
    cgroups: (container, manifest, pid) =>
      m.tree.container(container, manifest.cgroups, pid, { realtime: isRealtime(manifest.sched?.policy) }),
    ...(m.tree.prepare && {
      prepareCgroups: (container: string, manifest: Manifest) =>
        m.tree.prepare!(container, manifest.cgroups, { realtime: isRealtime(manifest.sched?.policy) }),
    }),
    ...extra,
  };
}

/** A debug command template with `<PID>` and `<CONTAINER>` substituted, split on whitespace. */
export function debugArgv(template: string, pid: number, container: string): string[] {
  return template
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => w.replaceAll('<PID>', String(pid)).replaceAll('<CONTAINER>', container));
}

const log = new Logger('actors');
const SIGKILL = 9;

/** Errors crossing into machine events are plain data (RuntimeError fields kept). */
const errorData = failureData;

export function makeActors(io: Io, opts: ActorOptions = {}) {
  const repository = (id: string): Repository => {
    const r = io.repositories?.get(id);
    if (!r) throw errors.invalidRepository(id);
    return r;
  };
  return {
    mount: fromPromise<MountOutput, MountInput>(async ({ input }) => {
      const output = await io.mount(input);
      io.onMounted?.(input, output);
      return output;
    }),
    umount: fromPromise<void, UmountInput>(async ({ input }) => {
      await io.umount(input);
      io.onUnmounted?.(input);
    }),
    process: processActor(io, opts),
    cgroups: cgroupsActor(io),
    install: fromPromise<NpkInfo, InstallInput>(async ({ input }) => npkInfo(await repository(input.repository).insert(input.data, input.size))),
    uninstall: fromPromise<void, UninstallInput>(async ({ input }) => {
      await repository(input.repository).remove(input.container);
      if (input.wipe === undefined) return;
      log.info(`Wiping persistent data dir ${input.wipe} of ${input.container}`);
      try {
        await (io.wipe ? io.wipe(input.wipe) : rm(input.wipe, { recursive: true, force: true }));
      } catch (e) {
        log.warn(`Failed to wipe ${input.wipe} of ${input.container}: ${errorData(e).message}`);
      }
    }),
  };
}

/** nstar-init behind the start gate, then the container process; signals and exec go to it. */
function processActor(io: Io, opts: ActorOptions) {
  return fromCallback<ProcessCommand, LaunchSpec>(({ input, sendBack, receive }) => {
    const send = sendBack as (e: ActorFact) => void;
    let launched: Launched | undefined;
    let gateRequested = false;
    let ended = false;
    let abandoned = false;
    const pendingSignals: number[] = [];
    receive((e) => {
      if (e.type === 'gate.open') {
        gateRequested = true;
        launched?.openGate();
      } else if (e.type === 'exec') {
        if (!launched?.exec) return e.reply(fail(errors.unexpected(`exec into ${input.container} is not supported`)));
        launched.exec(e.exec).then((x) => e.reply(ok(x)), (err) => e.reply(fail(err)));
      } else if (e.pid !== undefined) {
        // A health check's process that ran out of time (it may be gone already).
        try {
          process.kill(e.pid, e.signal);
        } catch {
          // ESRCH: it ended on its own
        }
      } else if (launched) launched.kill(e.signal);
      else pendingSignals.push(e.signal);
    });
    io.launch(input).then(
      (l) => {
        launched = l;
        if (abandoned) {
          l.kill(SIGKILL);
          return;
        }
        io.onSpawned?.(input.container, l.pid);
        for (const t of opts.debugCommands ?? []) io.spawnDebug?.(input.container, debugArgv(t, l.pid, input.container));
        send({ type: 'process.spawned', pid: l.pid });
        if (gateRequested) l.openGate();
        for (const s of pendingSignals.splice(0)) l.kill(s);
        l.started.then(
          ({ phases }) => send({ type: 'process.started', pid: l.pid, phases }),
          (e) => log.debug(`${input.container}: start did not complete: ${errorData(e).message}`),
        );
        l.exited.then(
          (status) => {
            ended = true;
            io.onExited?.(input.container, l.pid);
            send({ type: 'process.exit', status });
          },
          (e) => {
            ended = true;
            send({ type: 'process.failed', error: errorData(e) });
          },
        );
      },
      (e) => send({ type: 'process.failed', error: errorData(e) }),
    );
    // The machine leaves the started state only after process.exit or a
    // failed launch. Only a supervisor stopped abruptly (not shut down)
    // leaves a process behind: kill it rather than leak it.
    return () => {
      abandoned = true;
      if (launched && !ended) launched.kill(SIGKILL);
    };
  });
}

/**
 * The container's cgroups for one run: prepared when the run begins (where
 * the Io can), joined by the init pid when the machine attaches it, destroyed when it asks (before the exit is reported) or when the
 * run ends. Operations run one after another, in the order asked.
 */
function cgroupsActor(io: Io) {
  return fromCallback<CgroupsCommand, { container: string; manifest: Manifest }>(({ input, sendBack, receive }) => {
    const send = sendBack as (e: ActorFact) => void;
    let handle: Promise<ContainerCgroupsHandle | undefined> = Promise.resolve(undefined);
    let attached = false;
    let destroyed = false;
    let chain: Promise<unknown> = Promise.resolve();
    // Invoked before the process actor: the directories are made while the init is cloned.
    const unprepare = io.prepareCgroups?.(input.container, input.manifest);
    const then = (f: (h: ContainerCgroupsHandle | undefined) => unknown) => {
      chain = chain.then(() => handle).then(f);
    };
    const destroy = (h: ContainerCgroupsHandle | undefined) => {
      if (destroyed) return;
      destroyed = true;
      return h?.destroy();
    };
    receive((e) => {
      switch (e.type) {
        case 'attach':
          attached = true;
          handle = io.cgroups(input.container, input.manifest, e.pid).then(
            (h) => {
              h.onOom((memory) => send({ type: 'cgroups.oom', memory }));
              send({ type: 'cgroups.ready' });
              return h;
            },
            (err) => {
              send({ type: 'cgroups.failed', error: errorData(err) });
              return undefined;
            },
          );
          return;
        case 'freeze':
        case 'thaw':
          return then(async (h) => {
            try {
              if (!h) throw errors.unexpected(`${input.container} has no cgroups`);
              await h[e.type]();
              send({ type: e.type === 'freeze' ? 'cgroups.frozen' : 'cgroups.thawed' });
            } catch (err) {
              send({ type: 'cgroups.failed', error: errorData(err) });
            }
          });
        case 'stats':
          return then(async (h) => {
            try {
              if (!h?.stats) throw errors.unexpected(`no statistics for ${input.container}`);
              e.reply(ok((await h.stats(e.categories)) as Statistics));
            } catch (err) {
              e.reply(fail(err));
            }
          });
        case 'destroy':
          return then(async (h) => {
            try {
              await destroy(h);
            } catch (err) {
              log.warn(`${input.container}: cgroup removal: ${errorData(err).message}`);
            }
            send({ type: 'cgroups.destroyed' });
          });
      }
    });
    return () => {
      if (!attached) unprepare?.();
      if (!attached || destroyed) return;
      then(async (h) => {
        try {
          await destroy(h);
        } catch (err) {
          log.warn(`${input.container}: cgroup removal: ${errorData(err).message}`);
        }
      });
    };
  });
}

export type { CGroups };
