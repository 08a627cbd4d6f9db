// The wire to nstar-init (native/init/protocol.h): the spec and exec requests
// as TLV records, init's replies as short text messages. Pure functions, so
// the encoding is unit-tested without spawning anything. What goes into the
// spec is decided by the launch plan (machines/launch-plan.ts); this only
// encodes it.
import type { InitSpec, NetMode } from '../../machines/launch-plan.js';

export const T = {
  ROOT: 1,
  NET: 2,
  MOUNT: 3,
  UID: 4,
  GID: 5,
  GROUP: 6,
  RLIMIT: 7,
  SCHED: 8,
  CAPS: 9,
  SECCOMP: 10,
  INIT: 11,
  ARG: 12,
  ENV: 13,
  NFDS: 14,
  NAME: 15,
  HOSTNAME: 16,
  SELINUX: 17,
  SYMLINK: 18,
  TEST: 19,
  CTTY: 20,
} as const;

/** Test hooks (T.TEST): take the code paths of older kernels on this one. */
export const TEST = { noOpenat2: 1, noMountSetattr: 2 } as const;

/** The net modes' numbers on the wire (protocol.h). */
export const NET: Record<NetMode, number> = { new: 0, host: 1, join: 2, fd: 3 };
export const NICE_UNSET = 1000;
export const RLIM_INFINITY = 0xffffffffffffffffn;

class Writer {
  private parts: Buffer[] = [];

  record(tag: number, ...fields: (Buffer | string | number | bigint)[]): void {
    const body = Buffer.concat(fields.map(encodeField));
    const head = Buffer.alloc(8);
    head.writeUInt32LE(tag, 0);
    head.writeUInt32LE(body.length, 4);
    this.parts.push(head, body);
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** strings: NUL-terminated; numbers: u32 (two's complement for negatives); bigints: u64. */
function encodeField(f: Buffer | string | number | bigint): Buffer {
  if (Buffer.isBuffer(f)) return f;
  if (typeof f === 'string') {
    if (f.includes('\0')) throw new TypeError(`NUL byte in ${JSON.stringify(f)}`);
    return Buffer.from(f + '\0');
  }
  if (typeof f === 'bigint') {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, f));
    return b;
  }
  const b = Buffer.alloc(4);
  b.writeUInt32LE(f >>> 0);
  return b;
}

function limit(v: number | undefined): bigint {
  return v === undefined ? RLIM_INFINITY : BigInt(v);
}

export function encodeSpec(s: InitSpec): Buffer {
  const w = new Writer();
  w.record(T.NAME, s.name);
  w.record(T.ROOT, s.root);
  w.record(T.NET, NET[s.net.mode], s.net.name ?? '');
  for (const m of s.mounts) {
    if ('symlink' in m) w.record(T.SYMLINK, m.target, m.symlink);
    else w.record(T.MOUNT, BigInt(m.flags), m.source, m.target, m.fstype, m.data, m.sourceRoot ?? '');
  }
  if (s.hostname !== undefined) w.record(T.HOSTNAME, s.hostname);
  w.record(T.UID, s.uid);
  w.record(T.GID, s.gid);
  for (const g of s.groups) w.record(T.GROUP, g);
  for (const r of s.rlimits) w.record(T.RLIMIT, r.resource, 0, limit(r.soft), limit(r.hard));
  if (s.sched) w.record(T.SCHED, s.sched.policy, s.sched.priority, s.sched.nice ?? NICE_UNSET);
  w.record(T.CAPS, s.caps);
  if (s.seccomp && s.seccomp.length > 0) w.record(T.SECCOMP, s.seccomp);
  if (s.selinuxExec !== undefined) w.record(T.SELINUX, s.selinuxExec);
  w.record(T.INIT, s.init);
  for (const a of s.args) w.record(T.ARG, a);
  for (const e of s.env) w.record(T.ENV, e);
  w.record(T.NFDS, s.nfds);
  if (s.test) w.record(T.TEST, s.test);
  return w.done();
}

export function encodeGate(): Buffer {
  return Buffer.from('G');
}

export function encodeExec(id: number, path: string, args: string[], env: string[], ctty = false): Buffer {
  const w = new Writer();
  w.record(T.INIT, path);
  for (const a of args) w.record(T.ARG, a);
  for (const e of env) w.record(T.ENV, e);
  if (ctty) w.record(T.CTTY, 1);
  const head = Buffer.alloc(5);
  head.write('X', 0);
  head.writeUInt32LE(id, 1);
  return Buffer.concat([head, w.done()]);
}

// ---------------------------------------------------------------- init's replies

export type Status = { exit: { code: number } } | { signalled: { signal: number } };

export type InitMessage =
  | { type: 'ready'; setupUs: number }
  | { type: 'error'; errno: number; syscall: string; path: string }
  | { type: 'started'; nsPid: number; execUs: number }
  | { type: 'failed'; errno: number; step: string }
  | { type: 'exit'; status: Status }
  | { type: 'forked'; id: number; nsPid: number }
  | { type: 'execfailed'; id: number; errno: number; step: string }
  | { type: 'execexit'; id: number; status: Status }
  | { type: 'unknown'; text: string };

function status(kind: string, n: string): Status {
  return kind === 'signal' ? { signalled: { signal: Number(n) } } : { exit: { code: Number(n) } };
}

export function parseInitMessage(buf: Buffer): InitMessage {
  const text = buf.toString('utf8');
  const tab = text.indexOf('\t');
  const head = (tab < 0 ? text : text.slice(0, tab)).split(' ');
  const [type] = head;
  switch (type) {
    case 'ready':
      return { type, setupUs: Number(head[1]) };
    case 'error':
      return { type, errno: Number(head[1]), syscall: head[2] ?? '?', path: tab < 0 ? '' : text.slice(tab + 1) };
    case 'started':
      return { type, nsPid: Number(head[1]), execUs: Number(head[2]) };
    case 'failed':
      return { type, errno: Number(head[1]), step: head.slice(2).join(' ') };
    case 'exit':
      return { type, status: status(head[1], head[2]) };
    case 'forked':
      return { type, id: Number(head[1]), nsPid: Number(head[2]) };
    case 'execfailed':
      return { type, id: Number(head[1]), errno: Number(head[2]), step: head.slice(3).join(' ') };
    case 'execexit':
      return { type, id: Number(head[1]), status: status(head[2], head[3]) };
    default:
      return { type: 'unknown', text };
  }
}
