// The runtime's crash journal: a small file in run_dir that says what this
// instance owns — mounts, loop devices, cgroup directories, socket files,
// init pids. A restart reads it to clean what the dead instance left
// (spec/README.md deviation 17). Main thread.
//
// Format: an append-only sequence of frames, each the whole state:
//   u32le length | u32le CRC-32 (IEEE) of the payload | msgpack payload
// Every change appends one frame with one write(2) on a descriptor kept
// open (a start and its exit are two changes: a few µs each, where a
// temp-file write + rename cost ~0.2 ms). The reader takes the last frame
// whose length and checksum hold, so a kill -9 (or power cut) mid-write
// leaves the previous state, never a torn one. Past COMPACT_AT bytes the file
// is rewritten as one frame (temp + rename). A file of the earlier format (one
// bare msgpack state) is still read.
import { closeSync, constants, fchmodSync, fstatSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { pack, unpack } from 'msgpackr';

export interface JournalState {
  /** Pid of the runtime that wrote it. */
  pid: number;
  /** Mount target → device (loop or dm). */
  mounts: Record<string, string>;
  /** Cgroup directories created for containers (deepest first on removal). */
  cgroups: string[];
  /** Top-level cgroup directories. */
  topCgroups: string[];
  /** Container socket files. */
  sockets: string[];
  /** Host pids of running container inits. */
  pids: number[];
  /** This instance set the cgroup2 favordynmods option (a restart after a crash clears it at its shutdown). */
  favordynmods?: boolean;
}

export const JOURNAL_FILE = 'northstar.journal';
/** Root only, whatever the umask: it names the mounts and pids a restart cleans up. */
export const JOURNAL_MODE = 0o600;
/** Size past which the next change rewrites the file as a single frame. */
export const COMPACT_AT = 64 * 1024;

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (IEEE 802.3, as zlib's): a few hundred bytes in about a microsecond. */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function frame(state: JournalState): Buffer {
  const payload = pack(state);
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  payload.copy(out, 8);
  return out;
}

/** The state of the last intact frame, or undefined when there is none. */
export function lastFrame(buf: Buffer): unknown {
  let last: Buffer | undefined;
  for (let off = 0; off + 8 <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    const end = off + 8 + len;
    if (len === 0 || end > buf.length) break;
    const payload = buf.subarray(off + 8, end);
    if (crc32(payload) !== buf.readUInt32LE(off + 4)) break;
    last = payload;
    off = end;
  }
  return last === undefined ? undefined : unpack(last);
}

function empty(): JournalState {
  return { pid: process.pid, mounts: {}, cgroups: [], topCgroups: [], sockets: [], pids: [] };
}

export class Journal {
  private state: JournalState = empty();
  readonly path: string;
  private fd?: number;
  private size = 0;

  constructor(runDir: string) {
    this.path = join(runDir, JOURNAL_FILE);
  }

  /** The state a previous instance left, or undefined when there is none (or it is unreadable). */
  readPrevious(): JournalState | undefined {
    let buf: Buffer;
    try {
      buf = readFileSync(this.path);
    } catch {
      return undefined;
    }
    for (const read of [lastFrame, unpack]) {
      try {
        const s = read(buf) as Partial<JournalState> | undefined;
        if (s && typeof s === 'object' && typeof s.pid === 'number') return { ...empty(), ...s };
      } catch {
        // not this format
      }
    }
    return undefined;
  }

  get current(): Readonly<JournalState> {
    return this.state;
  }

  update(fn: (s: JournalState) => void): void {
    fn(this.state);
    this.flush();
  }

  addMount(target: string, device: string): void {
    this.update((s) => (s.mounts[target] = device));
  }

  removeMount(target: string): void {
    this.update((s) => delete s.mounts[target]);
  }

  addList(key: 'cgroups' | 'topCgroups' | 'sockets', items: string[]): void {
    this.update((s) => s[key].push(...items.filter((i) => !s[key].includes(i))));
  }

  removeList(key: 'cgroups' | 'topCgroups' | 'sockets', items: string[]): void {
    this.update((s) => (s[key] = s[key].filter((i) => !items.includes(i))));
  }

  addPid(pid: number): void {
    this.update((s) => s.pids.push(pid));
  }

  removePid(pid: number): void {
    this.update((s) => (s.pids = s.pids.filter((p) => p !== pid)));
  }

  /** Starts a fresh journal for this instance. */
  reset(): void {
    this.state = empty();
    this.compact();
  }

  /** Removes the file at a clean shutdown; only one this instance wrote (a start refused because another runtime owns run_dir leaves that one's). */
  remove(): void {
    if (this.fd === undefined) return;
    this.close();
    rmSync(this.path, { force: true });
  }

  private close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private flush(): void {
    if (this.fd === undefined || this.size >= COMPACT_AT) return this.compact();
    const f = frame(this.state);
    writeSync(this.fd, f);
    this.size += f.length;
  }

  /** The file rewritten as one frame (temp + rename), then appended to. */
  private compact(): void {
    this.close();
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, JOURNAL_MODE);
    try {
      // A temp file a crash left keeps its old mode through O_CREAT.
      fchmodSync(fd, JOURNAL_MODE);
      writeSync(fd, frame(this.state));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.fd = openSync(this.path, constants.O_WRONLY | constants.O_APPEND);
    this.size = fstatSync(this.fd).size;
  }
}
