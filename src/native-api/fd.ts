// Typed contract of the addon's fd module (native/fd.cc). Any thread. Every fd
// returned is O_CLOEXEC and owned by the caller (close it with fs.closeSync).

export type SocketKind = 'stream' | 'datagram' | 'seq_packet';

export interface UnixSocketOptions {
  /** Filesystem path; a stale file there is removed first. */
  path: string;
  type: SocketKind;
  /** chmod of the socket file. */
  mode: number;
  /** chown of the socket file (unchanged when absent). */
  uid?: number;
  gid?: number;
  /** SO_PASSCRED before bind. */
  passcred?: boolean;
}

export interface FdNative {
  /** memfd_create(name, flags | MFD_CLOEXEC) → fd. Throws a system error. */
  memfdCreate(name: string, flags: number): number;
  /** fcntl(fd, F_ADD_SEALS, seals). Throws a system error. */
  addSeals(fd: number, seals: number): void;
  /** socketpair(AF_UNIX, type | SOCK_CLOEXEC) → [a, b], both blocking. */
  socketpair(type?: SocketKind): [number, number];
  /** A bound AF_UNIX socket (listening for stream and seq_packet), chmod/chown applied. */
  unixSocket(opts: UnixSocketOptions): number;
  /** One non-blocking sendmsg of `data`, with `fds` as SCM_RIGHTS. Returns bytes sent. */
  sendMessage(fd: number, data: Buffer, fds?: number[]): number;
  /**
   * fcntl(F_DUPFD_CLOEXEC): a second fd for the same open file (any thread).
   * The caller owns and closes it.
   */
  dup(fd: number): number;
}
