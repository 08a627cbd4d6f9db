// The wire between the runtime (src/actors/launch/launch-protocol.ts) and nstar-init.
// Internal to this project: both sides change together.
//
// nstar-init starts with fd 0/1/2 = the container's stdio, fd 3 = the control
// socket (AF_UNIX SOCK_SEQPACKET), fds 4..4+N-1 = the extra fds the container
// keeps (console first, then sockets sorted by name). The container process
// gets them as 3..3+N-1 (the control socket is closed there).
//
// Runtime -> init, one message each:
//   spec   TLV records (below), the first message.
//   'G'    the start gate: the pid is in its cgroups, fork the container.
//   'X' u32 id, TLV(INIT, ARG*, ENV*)   exec request; SCM_RIGHTS [stdin, stdout, stderr].
//
// Init -> runtime, text, one message each:
//   ready <setup_us>
//   error <errno> <syscall>\t<path>              setup failed; init exits 1
//   started <nspid> <exec_us>                    the container process exec'd
//   failed <errno> <step>                        it could not (exit 101 follows)
//   exit code <n> | exit signal <n>              the container process ended
//   forked <id> <nspid>                          an exec request's process exec'd
//   execfailed <id> <errno> <step>               ...or could not
//   execexit <id> code <n> | execexit <id> signal <n>
//
// TLV: u32 tag, u32 length, payload (little-endian; strings NUL-terminated).
#pragma once

enum {
  T_ROOT = 1,        // str: host path of the root
  T_NET = 2,         // u32 mode (NET_*), str netns name
  T_MOUNT = 3,       // u64 flags, str source, str target (inside root), str fstype, str data,
                     // str source root ("": source is a host path; else source is inside it)
  T_UID = 4,         // u32
  T_GID = 5,         // u32
  T_GROUP = 6,       // u32, repeated: supplementary gids
  T_RLIMIT = 7,      // u32 resource, u32 0, u64 soft, u64 hard
  T_SCHED = 8,       // i32 policy, i32 priority, i32 nice (NICE_UNSET: leave)
  T_CAPS = 9,        // u64 capability mask
  T_SECCOMP = 10,    // struct sock_filter[]
  T_INIT = 11,       // str: executable inside the root
  T_ARG = 12,        // str, repeated: argv[1..]
  T_ENV = 13,        // str "K=V", repeated
  T_NFDS = 14,       // u32: number of extra fds after the control socket
  T_NAME = 15,       // str: the container ("name:version")
  T_HOSTNAME = 16,   // str (optional)
  T_SELINUX = 17,    // str: exec context (only sent where the host has SELinux)
  T_SYMLINK = 18,    // str path (inside root), str link text: a step of the mount list
  T_TEST = 19,       // u32 TEST_* bits: test hooks, sent only under NSTAR_TEST=1
  T_CTTY = 20,       // u32 1: (exec requests) a new session with stdin, a terminal, as controlling tty
};

// Test hooks: take the code paths of older kernels on this one.
enum {
  TEST_NO_OPENAT2 = 1,        // resolve mount targets with the O_NOFOLLOW walk (< 5.6)
  TEST_NO_MOUNT_SETATTR = 2,  // apply mount flags by remounting (< 5.12)
};

// NET_FD: join the network namespace whose nsfs fd came with the spec message
// (SCM_RIGHTS): one the runtime made ahead of time, lo already up.
enum { NET_NEW = 0, NET_HOST = 1, NET_JOIN = 2, NET_FD = 3 };

#define NICE_UNSET 1000
#define CONTROL_FD 3
