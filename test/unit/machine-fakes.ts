// Fake I/O actors for the machine tests: each records what the machine asked
// and lets the test decide when and how it answers. No I/O, no timers.
import assert from 'node:assert/strict';

import { fromCallback, fromPromise, type AnyActorRef } from 'xstate';

import type { LaunchSpec, MountInput, MountOutput, UmountInput } from '../../src/machines/contracts.js';
import type { ActorFact, CgroupsCommand, ProcessCommand } from '../../src/machines/container-events.js';
import type { Reply } from '../../src/machines/reply.js';
import type { ExitStatus, Result, RuntimeError } from '../../src/model/errors.js';
import type { Manifest } from '../../src/model/manifest.js';

export function manifest(name: string, version: string, over: Partial<Manifest> = {}): Manifest {
  return {
    name,
    version,
    init: '/probe',
    args: [],
    env: {},
    uid: 1000,
    gid: 1000,
    mounts: {},
    capabilities: [],
    suppl_groups: [],
    rlimits: {},
    sockets: {},
    ...over,
  };
}

export function resourceManifest(name: string, version: string): Manifest {
  const m = manifest(name, version);
  delete m.init;
  return m;
}

/** Lets pending promise callbacks and the actors' reactions run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

interface Pending<I, O> {
  input: I;
  resolve(v: O): void;
  reject(e: unknown): void;
}

export class FakeProcess {
  readonly got: ProcessCommand[] = [];
  constructor(
    readonly input: LaunchSpec,
    private readonly sendBack: (e: ActorFact) => void,
  ) {}
  send(e: ActorFact): void {
    this.sendBack(e);
  }
  signals(): number[] {
    return this.got.flatMap((c) => (c.type === 'signal' ? [c.signal] : []));
  }
  /** Walks the process through spawn; the test answers cgroups itself. */
  spawned(pid = 4242): void {
    this.send({ type: 'process.spawned', pid });
  }
  started(pid = 4242): void {
    this.send({ type: 'process.started', pid, phases: { spawn: 1, setup: 2, gate_wait: 0.5, exec: 1 } });
  }
  exit(code = 0): void {
    this.send({ type: 'process.exit', status: { exit: { code } } });
  }
  signalled(signal: number): void {
    this.send({ type: 'process.exit', status: { signalled: { signal } } });
  }
}

export class FakeCgroups {
  readonly got: CgroupsCommand[] = [];
  constructor(
    readonly input: { container: string; manifest: Manifest },
    private readonly sendBack: (e: ActorFact) => void,
  ) {}
  send(e: ActorFact): void {
    this.sendBack(e);
  }
  types(): string[] {
    return this.got.map((c) => c.type);
  }
}

/** Fakes of every container actor, recording per container id. */
export class FakeIo {
  readonly mounts: Pending<MountInput, MountOutput>[] = [];
  readonly umounts: Pending<UmountInput, void>[] = [];
  readonly processes = new Map<string, FakeProcess[]>();
  readonly cgroups = new Map<string, FakeCgroups[]>();
  /** Answer mounts at once (for supervisor tests that do not look at mount timing). */
  autoMount = false;
  autoUmount = false;
  mountError?: (input: MountInput) => unknown;
  /** Auto-destroy cgroups when asked (the usual case). */
  autoDestroy = true;
  /** Processes spawn, get their cgroups and start by themselves. */
  autoRun = false;
  /** Processes exit on SIGKILL (and on SIGTERM unless ignored) by themselves. */
  autoExit = false;
  ignoreTerm = false;
  /** How exec'd processes (health checks) end: exit 0 unless a test says otherwise. */
  execExit: () => Promise<ExitStatus> = () => Promise.resolve({ exit: { code: 0 } });
  private nextPid = 1000;

  actors() {
    return {
      mount: fromPromise<MountOutput, MountInput>(
        ({ input }) =>
          new Promise((resolve, reject) => {
            const err = this.mountError?.(input);
            if (err) return reject(err);
            if (this.autoMount) return resolve({ device: `/dev/loop-${input.container}`, target: input.target, phases: {} });
            this.mounts.push({ input, resolve, reject });
          }),
      ),
      umount: fromPromise<void, UmountInput>(
        ({ input }) =>
          new Promise((resolve, reject) => {
            if (this.autoUmount) return resolve();
            this.umounts.push({ input, resolve, reject });
          }),
      ),
      process: fromCallback<ProcessCommand, LaunchSpec>(({ input, sendBack, receive }) => {
        const p = new FakeProcess(input, sendBack as (e: ActorFact) => void);
        const pid = this.nextPid++;
        receive((e) => {
          p.got.push(e);
          if (e.type === 'exec') e.reply({ ok: true, value: { pid: 777, exited: this.execExit() } });
          if (e.type === 'gate.open' && this.autoRun) queueMicrotask(() => p.started(pid));
          if (e.type === 'signal' && this.autoExit && (e.signal === 9 || (e.signal === 15 && !this.ignoreTerm))) {
            queueMicrotask(() => p.signalled(e.signal));
          }
        });
        if (this.autoRun) queueMicrotask(() => p.spawned(pid));
        const list = this.processes.get(input.container) ?? [];
        list.push(p);
        this.processes.set(input.container, list);
      }),
      cgroups: fromCallback<CgroupsCommand, { container: string; manifest: Manifest }>(({ input, sendBack, receive }) => {
        const c = new FakeCgroups(input, sendBack as (e: ActorFact) => void);
        receive((e) => {
          c.got.push(e);
          if (e.type === 'attach' && this.autoRun) queueMicrotask(() => c.send({ type: 'cgroups.ready' }));
          if (e.type === 'freeze' && this.autoRun) queueMicrotask(() => c.send({ type: 'cgroups.frozen' }));
          if (e.type === 'thaw' && this.autoRun) queueMicrotask(() => c.send({ type: 'cgroups.thawed' }));
          if (e.type === 'destroy' && this.autoDestroy) sendBack({ type: 'cgroups.destroyed' });
          if (e.type === 'stats') e.reply({ ok: true, value: { pids: { current: 1 }, categories: e.categories ?? 'all' } });
        });
        const list = this.cgroups.get(input.container) ?? [];
        list.push(c);
        this.cgroups.set(input.container, list);
      }),
    };
  }

  proc(id: string): FakeProcess {
    const p = this.processes.get(id)?.at(-1);
    assert.ok(p, `no process was launched for ${id}`);
    return p;
  }

  cg(id: string): FakeCgroups {
    const c = this.cgroups.get(id)?.at(-1);
    assert.ok(c, `no cgroups actor for ${id}`);
    return c;
  }

  /** Runs a launched container through spawn → cgroups → started. */
  async run(id: string, pid = 4242): Promise<void> {
    await flush();
    this.proc(id).spawned(pid);
    this.cg(id).send({ type: 'cgroups.ready' });
    this.proc(id).started(pid);
    await flush();
  }
}

/** A reply that records every settlement; `settledOnce()` asserts exactly one. */
export interface Recorded<T> extends Reply<T> {
  calls: Result<T, RuntimeError>[];
}

export function recorder<T = void>(): Recorded<T> {
  const calls: Result<T, RuntimeError>[] = [];
  const r = ((o: Result<T, RuntimeError>) => {
    calls.push(o);
  }) as Recorded<T>;
  r.calls = calls;
  return r;
}

export function settledOk<T>(r: Recorded<T>): T {
  assert.equal(r.calls.length, 1, `expected exactly one reply, got ${r.calls.length}`);
  const o = r.calls[0]!;
  assert.ok(o.ok, `expected ok, got ${o.ok ? '' : o.error.message}`);
  return o.value;
}

export function settledError<T>(r: Recorded<T>, code: string): Record<string, unknown> {
  assert.equal(r.calls.length, 1, `expected exactly one reply, got ${r.calls.length}`);
  const o = r.calls[0]!;
  assert.ok(!o.ok, `expected error ${code}, got ok`);
  assert.equal(o.error.code, code, o.error.message);
  return o.error.fields as Record<string, unknown>;
}

export function unsettled<T>(r: Recorded<T>): void {
  assert.equal(r.calls.length, 0, 'expected no reply yet');
}

export function send(ref: AnyActorRef | undefined, e: unknown): void {
  assert.ok(ref, 'no actor');
  ref.send(e as never);
}

// ---------------------------------------------------------------- repositories

export interface FakeNpk {
  path: string;
  manifest: Manifest;
  fsImgOffset: number;
  fsImgSize: number;
}

export function fakeNpk(m: Manifest): FakeNpk {
  return { path: `/repo/${m.name}:${m.version}.npk`, manifest: m, fsImgOffset: 4096, fsImgSize: 8192 };
}

/** A Repository holding plain manifests; an "NPK stream" is a JSON manifest. */
export class FakeRepository {
  readonly containers = new Map<string, { npk: FakeNpk; size: number }>();
  readonly removed: string[] = [];
  /** Skip the duplicate check, like two inserts racing past it. */
  racy = false;
  constructor(
    readonly id: string,
    manifests: Manifest[] = [],
    readonly key?: Buffer,
  ) {
    for (const m of manifests) this.containers.set(`${m.name}:${m.version}`, { npk: fakeNpk(m), size: 1 });
  }
  async insert(data: AsyncIterable<Buffer | Uint8Array>): Promise<FakeNpk> {
    const chunks: Buffer[] = [];
    for await (const c of data) chunks.push(Buffer.from(c));
    const m = JSON.parse(Buffer.concat(chunks).toString()) as Manifest;
    const id = `${m.name}:${m.version}`;
    await new Promise((r) => setImmediate(r));
    if (this.containers.has(id) && !this.racy) throw new Error(`container ${id} is already in repository ${this.id}`);
    const npk = fakeNpk(m);
    this.containers.set(id, { npk, size: 1 });
    return npk;
  }
  async remove(id: string): Promise<void> {
    if (!this.containers.delete(id)) throw new Error(`no ${id} in ${this.id}`);
    this.removed.push(id);
  }
  async close(): Promise<void> {}
}

export async function* stream(m: Manifest): AsyncIterable<Buffer> {
  yield Buffer.from(JSON.stringify(m));
}
