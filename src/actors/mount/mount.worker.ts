// Mount pool thread entry (Piscina, started through src/worker-boot.mjs).
// Blocking work only: loop attach, verity, mount(2), umount2(2). Every result
// is data (a Result whose error is a TaskFailure); nothing is thrown across
// the thread boundary. The loop-device fd opened by the attach is released
// by this task on every path (a terminated worker leaves it to the addon's
// env cleanup hook, and AUTOCLEAR then detaches the device).
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';

import type { MountInput, MountOutput, Phases, Result, UmountInput } from '../../machines/contracts.js';
import { err, ok, type SystemErrorData } from '../../model/errors.js';
import { native } from '../../native.js';
import { MS } from '../../native-api/loop.js';
import type { LoopAttached } from '../../native-api/loop.js';
import { createVerityDevice, DM_CONTROL, dmNameOf, hasDeviceMapper, removeVerityDevice } from './dm-verity.js';
import { verifyImageFd } from './mount-verify.js';
import { isMountPoint } from './mountinfo.js';

/** Test-only hooks, honoured only when NSTAR_TEST=1. */
export interface MountHooks {
  /** After the loop attach: announce on the `nstar-mount-test` BroadcastChannel, then never finish. */
  pauseAfterAttach?: boolean;
}

/**
 * mountAll's work share: like the C reference's threads, each batch task
 * takes the next input from a shared counter until none is left, and posts
 * each result on `port` as soon as it has it (so results survive a worker
 * that dies later). `state[i]` is 1 while input i is being mounted, 2 after.
 */
export interface MountBatch {
  op: 'mountBatch';
  inputs: MountInput[];
  next: Int32Array;
  state: Int32Array;
  port: MessagePort;
  abort?: Int32Array;
}

/** One message on a batch port. */
export interface BatchItem {
  index: number;
  result: Result<MountOutput, TaskFailure>;
}

export type MountTask =
  | { op: 'mount'; input: MountInput; hooks?: MountHooks; abort?: Int32Array }
  | MountBatch
  | { op: 'umount'; input: UmountInput };

/** A failure as data: the error, the phase it happened in, and any failed cleanup. */
export interface TaskFailure {
  phase: string;
  error: SystemErrorData;
  cleanup?: SystemErrorData[];
}

export const TEST_CHANNEL = 'nstar-mount-test';

export default async function run(task: MountTask): Promise<Result<MountOutput | number | undefined, TaskFailure>> {
  if (task.op === 'mount') return mountTask(task.input, task.hooks, task.abort);
  if (task.op === 'mountBatch') return batchTask(task);
  return umountTask(task.input);
}

/** Resolves with the number of results posted on the port. */
async function batchTask(t: MountBatch): Promise<Result<number, TaskFailure>> {
  let posted = 0;
  try {
    for (;;) {
      const i = Atomics.add(t.next, 0, 1);
      if (i >= t.inputs.length) break;
      Atomics.store(t.state, i, 1);
      const result = await mountTask(t.inputs[i]!, undefined, t.abort);
      t.port.postMessage({ index: i, result } satisfies BatchItem);
      posted++;
      Atomics.store(t.state, i, 2);
    }
  } finally {
    t.port.close();
  }
  return ok(posted);
}

function now(): number {
  return performance.now();
}

function fail(phase: string, error: SystemErrorData, cleanup: SystemErrorData[] = []): { ok: false; error: TaskFailure } {
  return err(cleanup.length > 0 ? { phase, error, cleanup } : { phase, error });
}

/** What the task has done so far, undone in reverse on failure. */
interface Undo {
  createdTarget?: string;
  loop?: LoopAttached;
  dmName?: string;
  mounted?: string;
}

function unwind(u: Undo): SystemErrorData[] {
  const errs: SystemErrorData[] = [];
  const n = native();
  let stillMounted = false;
  if (u.mounted) {
    const r = n.umount(u.mounted, { detach: true });
    if (!r.ok) errs.push(r.error);
    stillMounted = !r.ok;
  }
  if (u.dmName) {
    // Deferred only if the mount could not go: the device then leaves with it.
    const r = removeVerityDevice(u.dmName, stillMounted);
    if (!r.ok) errs.push(r.error);
  }
  if (u.loop) {
    // LOOP_CLR_FD through our own fd detaches at once (we are the only opener).
    const r = n.loopRelease(u.loop.fd, { detach: true });
    if (!r.ok) errs.push(r.error);
    u.loop = undefined;
  }
  if (u.createdTarget) {
    try {
      rmdirSync(u.createdTarget);
    } catch (e) {
      errs.push(fsError(e, 'rmdir', u.createdTarget));
    }
  }
  return errs;
}

function fsError(e: unknown, syscall: string, path: string): SystemErrorData {
  const x = e as NodeJS.ErrnoException;
  return { code: x.code ?? 'EIO', errno: x.errno, syscall, path, message: x.message };
}

const ABORTED: SystemErrorData = { code: 'ABORT_ERR', message: 'the mount was aborted' };

async function mountTask(input: MountInput, hooks?: MountHooks, abort?: Int32Array): Promise<Result<MountOutput, TaskFailure>> {
  const isAborted = () => abort !== undefined && Atomics.load(abort, 0) !== 0;
  const n = native();
  const phases: Phases = {};
  const u: Undo = {};
  let phase = 'target';
  try {
    if (!existsSync(input.target)) {
      mkdirSync(input.target, { recursive: true, mode: 0o755 });
      u.createdTarget = input.target;
    } else if (isMountPoint(input.target)) {
      // Never stack a second image on a mounted container.
      return fail(phase, { code: 'EBUSY', syscall: 'mount', path: input.target, message: `mount \`${input.target}\`: already a mount point` });
    }
    if (isAborted()) return fail(phase, ABORTED, unwind(u));
    phase = 'attach';
    const attached = n.loopAttach({
      path: input.npkPath,
      offset: input.fsImgOffset,
      sizeLimit: input.fsImgSize,
      timeoutMs: input.loopDeviceTimeoutMs,
      // A repository file is opened O_NOFOLLOW; a memfd's /proc/<pid>/fd/<n> is a link by nature.
      noFollow: !isMemfdPath(input.npkPath),
    });
    if (!attached.ok) return fail(attached.error.syscall === 'open' && attached.error.path === input.npkPath ? 'open' : phase, attached.error, unwind(u));
    u.loop = attached.value;
    phases.open = attached.value.phases.open;
    phases.attach = attached.value.phases.attach;
    if (hooks?.pauseAfterAttach && process.env.NSTAR_TEST === '1') await pause(input.container, attached.value.device, abort);
    if (isAborted()) return fail(phase, ABORTED, unwind(u));

    phase = 'verity';
    const t0 = now();
    const source = await verity(input, attached.value, u);
    if (!source.ok) return fail(phase, source.error, unwind(u));
    if (input.verity) phases.verity = now() - t0;
    if (isAborted()) return fail(phase, ABORTED, unwind(u));

    phase = 'mount';
    const t1 = now();
    const data = input.selinuxContext && hasSelinux() ? `context=${input.selinuxContext}` : null;
    const m = n.mount(source.value, input.target, 'squashfs', imageFlags(input), data);
    if (!m.ok) {
      const what = `squashfs of ${input.npkPath} at offset ${input.fsImgOffset}, ${input.fsImgSize} bytes, through ${source.value}`;
      return fail(phase, { ...m.error, message: `${m.error.message} (${what})` }, unwind(u));
    }
    u.mounted = input.target;
    phases.mount = now() - t1;
    if (u.dmName) {
      // The device now lives as long as the mount does.
      const r = removeVerityDevice(u.dmName, true);
      if (!r.ok) return fail(phase, r.error, unwind(u));
    }
    const rel = n.loopRelease(attached.value.fd);
    u.loop = undefined;
    if (!rel.ok) return fail(phase, rel.error, unwind(u));
    return ok({ device: source.value, target: input.target, ...(u.dmName ? { dmName: u.dmName } : {}), phases });
  } catch (e) {
    return fail(phase, fsError(e, phase, input.target), unwind(u));
  }
}

/** The device to mount: the loop device itself, or a dm-verity device over it. */
async function verity(input: MountInput, loop: LoopAttached, u: Undo): Promise<Result<string>> {
  if (!input.verity) return ok(loop.device);
  const mode = input.verityMode;
  const dm = hasDeviceMapper();
  if (mode === 'dm' && !dm)
    return err({
      code: 'ENODEV',
      path: DM_CONTROL,
      message: `verity = "dm" needs device-mapper, but ${DM_CONTROL} does not exist (set verity = "auto" or "userspace")`,
    });
  if (mode === 'dm' || (mode === 'auto' && dm)) {
    const d = createVerityDevice(loop.device, input.verity);
    if (!d.ok) return d;
    u.dmName = d.value.name;
    return ok(d.value.device);
  }
  // Userspace: verify what the kernel will read, through the attached device.
  const v = await verifyImageFd(loop.fd, input.fsImgSize, input.verity);
  if (!v.ok) return v;
  return ok(loop.device);
}

/**
 * ro,nosuid as Northstar; images from unkeyed repositories (no verity: it is
 * present exactly for keyed ones) also nodev (deviation 22), so a device node
 * crafted into an unsigned image is never honoured. Container binds of the
 * image (its root, resources) keep the flag.
 */
function imageFlags(input: Pick<MountInput, 'verity'>): number {
  return MS.RDONLY | MS.NOSUID | (input.verity === undefined ? MS.NODEV : 0);
}

function isMemfdPath(path: string): boolean {
  return /^\/proc\/(self|\d+)\/fd\/\d+$/.test(path);
}

function hasSelinux(): boolean {
  return existsSync('/sys/fs/selinux/enforce');
}

/** Test hook: announce the attach, then wait until aborted (or the worker is terminated). */
async function pause(container: string, device: string, abort: Int32Array | undefined): Promise<void> {
  const ch = new BroadcastChannel(TEST_CHANNEL);
  ch.postMessage({ event: 'attached', container, device });
  ch.close();
  const flag = abort ?? new Int32Array(new SharedArrayBuffer(4));
  // Atomics.waitAsync (Node >= 16) is missing from the ES2022 lib typings.
  const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: unknown } }).waitAsync;
  const w = waitAsync(flag, 0, 0);
  if (w.async) await w.value;
}

const DEVICE_GONE_MS = 3000;

/** Our dm-verity device (named northstar-*) when `device` (what was mounted) is one. */
function verityDevice(device: string | undefined): { dev: string; name: string } | undefined {
  const dev = /^\/dev\/(dm-\d+)$/.exec(device ?? '')?.[1];
  const name = dev === undefined ? undefined : dmNameOf(dev);
  return dev !== undefined && name?.startsWith('northstar-') ? { dev, name } : undefined;
}

/** Polls until the device is no longer the named dm device (removed, or its number reused); false after `ms`. */
async function gone(d: { dev: string; name: string }, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (dmNameOf(d.dev) === d.name) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

async function umountTask(input: UmountInput): Promise<Result<undefined, TaskFailure>> {
  const verity = verityDevice(input.device);
  const r = native().umount(input.target);
  if (!r.ok) return fail('umount', r.error);
  // The verity device was marked for deferred removal at mount; the kernel
  // removes it (and AUTOCLEAR its loop device) once the last mount of the
  // image goes — a copy in an exiting container's mount namespace can hold it
  // a little longer. Answer once it is gone, so an umount's reply means the
  // devices are free (bounded: a holder we do not know of is reported, not
  // waited for).
  if (verity && !(await gone(verity, DEVICE_GONE_MS)))
    return fail('umount', { code: 'EBUSY', path: `/dev/mapper/${verity.name}`, message: `dm device ${verity.name} still in use ${DEVICE_GONE_MS} ms after the umount of ${input.target}; the kernel removes it when its last user goes` });
  try {
    rmdirSync(input.target);
  } catch (e) {
    return fail('rmdir', fsError(e, 'rmdir', input.target));
  }
  return ok(undefined);
}
