// nstar-init: PID 1 of a container's pid namespace. A static, single-threaded
// C program, exec'd by the runtime right after clone(CLONE_VM|CLONE_VFORK) (native/spawn.cc), so
// everything unsafe in a forked Node process happens here instead.
//
// Order (spec/launch.md §5.2, ARCHITECTURE.md "Threads and processes"):
//   read the spec from the control socket → network → mounts → pivot_root →
//   rlimits → "ready" → wait at the start gate (the runtime moves our pid
//   into the cgroups meanwhile) → fork the container process, which takes
//   the manifest's ids, sets sched, seccomp, no_new_privs, capabilities and
//   execs init → reap everything (we are PID 1) → report the exact exit
//   status → exit, which makes the kernel kill whatever is left in the
//   namespace.
// Later requests on the control socket fork extra processes into the same
// namespaces, root, cgroups and credentials (exec).
//
// Ids: init itself stays uid/gid 0 with its full capability set for the
// container's whole life; only the processes it forks (the container process
// and exec'd ones) take the manifest's uid, gid and groups, and they need
// init's capabilities to do so. Were init to take the container's uid (as
// Northstar's does), any host process of that uid could signal it or, with
// a permissive ptrace scope, attach to it, and so reach a process holding
// every capability and the control socket. As root it is out of reach of
// everything but root, and inside its pid namespace the kernel shields PID 1
// from the container's own signals anyway.
//
// Mount targets come from the manifest but are resolved inside the new root
// (openat2 RESOLVE_IN_ROOT, or an O_NOFOLLOW walk on kernels before 5.6), so
// a symlink in an image (`evil -> /tmp`) resolves within the root and never
// reaches the host; what is missing is created through fds below the root,
// and each mount lands on the resolved fd (/proc/self/fd/N), so nothing can
// swap the target between the check and the mount.
// Wire format: protocol.h. Every fd we open is O_CLOEXEC.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8
#endif

#define MAX_MOUNTS 256
#define MAX_GROUPS 256
#define MAX_RLIMITS 32
#define MAX_ARGS 4096
#define MAX_EXECS 64

// One step of the mount list: a mount (or, with MS_REMOUNT|MS_BIND, flags
// added to the mount at target), or a symlink to create (data = its text).
struct mnt {
  int symlink;
  unsigned long flags;
  const char *source, *target, *fstype, *data;
  // Non-empty: source is resolved inside this directory (a resource image),
  // like targets are inside the root.
  const char* source_root;
};

struct rlim {
  int resource;
  struct rlimit value;
};

struct spec {
  const char* root;
  int net;
  const char* netns;
  struct mnt mounts[MAX_MOUNTS];
  int nmounts;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  int ngroups;
  struct rlim rlimits[MAX_RLIMITS];
  int nrlimits;
  int sched_policy, sched_priority, sched_nice;  // policy -1: unchanged
  uint64_t caps;
  struct sock_filter* filter;
  int nfilter;
  const char* init;
  const char* argv[MAX_ARGS + 2];
  int argc;
  const char* envp[MAX_ARGS + 1];
  int envc;
  int nfds;
  const char* name;
  const char* hostname;
  const char* selinux;
  uint32_t test;  // TEST_* bits (protocol.h)
  uint32_t ctty;  // exec requests: setsid + TIOCSCTTY on stdin
};

// A process forked on request: its id in the runtime's numbering.
struct exec_child {
  pid_t pid;
  uint32_t id;
};

static struct exec_child execs[MAX_EXECS];

// ---------------------------------------------------------------- reporting

static void send_msg(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void send_msg(const char* fmt, ...) {
  char buf[4600];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n >= (int)sizeof buf) n = sizeof buf - 1;
  while (send(CONTROL_FD, buf, n, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// A setup step failed: tell the runtime errno, syscall and path, then exit.
static void __attribute__((noreturn)) fail(const char* syscall, const char* path) {
  send_msg("error %d %s\t%s", errno, syscall, path ? path : "");
  _exit(1);
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// ---------------------------------------------------------------- spec

struct reader {
  const unsigned char *p, *end;
  const char* err;
};

static uint32_t rd_u32(struct reader* r) {
  uint32_t v = 0;
  if (r->end - r->p >= 4) memcpy(&v, r->p, 4);
  r->p += 4;
  return v;
}

static uint64_t rd_u64(struct reader* r) {
  uint64_t v = 0;
  if (r->end - r->p >= 8) memcpy(&v, r->p, 8);
  r->p += 8;
  return v;
}

static const char* rd_str(struct reader* r) {
  const char* s = (const char*)r->p;
  const unsigned char* z = memchr(r->p, 0, r->end > r->p ? (size_t)(r->end - r->p) : 0);
  if (z == NULL) {
    r->err = "unterminated string";
    return "";
  }
  r->p = z + 1;
  return s;
}

#define LIMIT(full, what) \
  if (full) return "too many " what

// Parses TLV records into the program/args/env fields (exec requests) or the
// whole spec. Returns NULL, or what is wrong with the message.
static const char* parse(const unsigned char* buf, size_t len, struct spec* s) {
  struct reader all = {buf, buf + len, NULL};
  while (all.end - all.p >= 8) {
    uint32_t tag = rd_u32(&all), n = rd_u32(&all);
    if ((size_t)(all.end - all.p) < n) return "truncated record";
    struct reader r = {all.p, all.p + n, NULL};
    all.p += n;
    switch (tag) {
      case T_ROOT: s->root = rd_str(&r); break;
      case T_NET: s->net = (int)rd_u32(&r); s->netns = rd_str(&r); break;
      case T_MOUNT: {
        LIMIT(s->nmounts == MAX_MOUNTS, "mounts");
        struct mnt* m = &s->mounts[s->nmounts++];
        m->flags = (unsigned long)rd_u64(&r);
        m->source = rd_str(&r);
        m->target = rd_str(&r);
        m->fstype = rd_str(&r);
        m->data = rd_str(&r);
        m->source_root = r.p < r.end ? rd_str(&r) : "";
        break;
      }
      case T_SYMLINK: {
        LIMIT(s->nmounts == MAX_MOUNTS, "mounts");
        struct mnt* m = &s->mounts[s->nmounts++];
        m->symlink = 1;
        m->target = rd_str(&r);
        m->data = rd_str(&r);
        m->source = m->fstype = m->source_root = "";
        break;
      }
      case T_UID: s->uid = rd_u32(&r); break;
      case T_GID: s->gid = rd_u32(&r); break;
      case T_GROUP:
        LIMIT(s->ngroups == MAX_GROUPS, "groups");
        s->groups[s->ngroups++] = rd_u32(&r);
        break;
      case T_RLIMIT: {
        LIMIT(s->nrlimits == MAX_RLIMITS, "rlimits");
        struct rlim* l = &s->rlimits[s->nrlimits++];
        l->resource = (int)rd_u32(&r);
        rd_u32(&r);
        l->value.rlim_cur = rd_u64(&r);
        l->value.rlim_max = rd_u64(&r);
        break;
      }
      case T_SCHED:
        s->sched_policy = (int)rd_u32(&r);
        s->sched_priority = (int)rd_u32(&r);
        s->sched_nice = (int)rd_u32(&r);
        break;
      case T_CAPS: s->caps = rd_u64(&r); break;
      case T_SECCOMP:
        s->filter = (struct sock_filter*)r.p;
        s->nfilter = (int)(n / sizeof(struct sock_filter));
        break;
      case T_INIT: s->init = rd_str(&r); break;
      case T_ARG:
        LIMIT(s->argc == MAX_ARGS, "args");
        s->argv[1 + s->argc++] = rd_str(&r);
        break;
      case T_ENV:
        LIMIT(s->envc == MAX_ARGS, "env entries");
        s->envp[s->envc++] = rd_str(&r);
        break;
      case T_NFDS: s->nfds = (int)rd_u32(&r); break;
      case T_NAME: s->name = rd_str(&r); break;
      case T_HOSTNAME: s->hostname = rd_str(&r); break;
      case T_SELINUX: s->selinux = rd_str(&r); break;
      case T_TEST: s->test = rd_u32(&r); break;
      case T_CTTY: s->ctty = rd_u32(&r); break;
      default: break;  // unknown records are skipped
    }
    if (r.err) return r.err;
  }
  s->argv[0] = s->init;
  s->argv[1 + s->argc] = NULL;
  s->envp[s->envc] = NULL;
  return NULL;
}

// Receives one control message into a malloc'd buffer (caller frees).
// Returns its length, 0 at EOF. fds (if any) land in fds[0..*nfds).
static volatile sig_atomic_t gate_signal;

static ssize_t recv_msg(unsigned char** out, int* fds, int* nfds) {
  ssize_t size;
  do size = recv(CONTROL_FD, NULL, 0, MSG_PEEK | MSG_TRUNC);
  while (size < 0 && errno == EINTR && !gate_signal);
  if (size <= 0) return size;
  unsigned char* buf = malloc((size_t)size + 1);
  if (buf == NULL) fail("malloc", "control message");
  struct iovec iov = {buf, (size_t)size};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int) * 8)];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
  ssize_t n;
  do n = recvmsg(CONTROL_FD, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) fail("recvmsg", "control socket");
  if (nfds) *nfds = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (fds && *nfds < 8) fds[(*nfds)++] = fd;
      else close(fd);
    }
  }
  *out = buf;
  return n;
}

// ---------------------------------------------------------------- sandbox

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("socket", "AF_INET");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) fail("ioctl(SIOCGIFFLAGS)", "lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail("ioctl(SIOCSIFFLAGS)", "lo");
  close(s);
}

// Deviation 3 (spec/README.md): a missing named netns fails the start.
static void network(const struct spec* s, int netfd) {
  if (s->net == NET_NEW) {
    loopback_up();
  } else if (s->net == NET_FD) {
    errno = EBADF;
    if (netfd < 0 || setns(netfd, CLONE_NEWNET) != 0) fail("setns", "prepared network namespace");
    close(netfd);
  } else if (s->net == NET_JOIN) {
    char path[512];
    snprintf(path, sizeof path, "/run/netns/%s", s->netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open", path);
    if (setns(fd, CLONE_NEWNET) != 0) fail("setns", path);
    close(fd);
  }
}

// ---------------------------------------------------------------- paths inside the root

static int no_openat2, no_mount_setattr;  // set on ENOSYS, or by a test hook

#define MAX_DEPTH 128
#define MAX_LINKS 40

static void close_stack(const int* stack, int from, int to) {
  for (int i = from; i <= to; i++) close(stack[i]);
}

// Resolves `path` below `top` by hand, as RESOLVE_IN_ROOT does (kernels
// before 5.6): each component opened O_PATH|O_NOFOLLOW, a symlink's text
// spliced into the rest of the path (an absolute one restarts at `top`), and
// ".." never above `top`. Returns an O_PATH fd, or -1 with errno.
static int walk_in(int top, const char* path) {
  char todo[2 * PATH_MAX], rest[2 * PATH_MAX], name[NAME_MAX + 1], link[PATH_MAX];
  if (snprintf(todo, sizeof todo, "%s", path) >= (int)sizeof todo) return errno = ENAMETOOLONG, -1;
  int stack[MAX_DEPTH];  // stack[0] = top (not ours); 1..depth are ours
  int depth = 0, links = 0, err = 0;
  stack[0] = top;
  const char* p = todo;
  for (;;) {
    while (*p == '/') p++;
    if (*p == 0) break;
    size_t len = strcspn(p, "/");
    if (len > NAME_MAX) {
      err = ENAMETOOLONG;
      break;
    }
    memcpy(name, p, len);
    name[len] = 0;
    p += len;
    if (strcmp(name, ".") == 0) continue;
    if (strcmp(name, "..") == 0) {
      if (depth > 0) close(stack[depth--]);
      continue;
    }
    int fd = openat(stack[depth], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      err = errno;
      if (fd >= 0) close(fd);
      break;
    }
    if (!S_ISLNK(st.st_mode)) {
      if (depth + 1 == MAX_DEPTH) {
        close(fd);
        err = ENAMETOOLONG;
        break;
      }
      stack[++depth] = fd;
      continue;
    }
    ssize_t n = readlinkat(fd, "", link, sizeof link - 1);
    err = n < 0 ? errno : ++links > MAX_LINKS ? ELOOP : 0;
    close(fd);
    if (err) break;
    link[n] = 0;
    if (snprintf(rest, sizeof rest, "%s/%s", link, p) >= (int)sizeof rest) {
      err = ENAMETOOLONG;
      break;
    }
    memcpy(todo, rest, sizeof todo);
    p = todo;
    if (link[0] == '/') {
      close_stack(stack, 1, depth);
      depth = 0;
    }
  }
  if (err) {
    close_stack(stack, 1, depth);
    return errno = err, -1;
  }
  if (depth == 0) return fcntl(top, F_DUPFD_CLOEXEC, 0);
  close_stack(stack, 1, depth - 1);
  return stack[depth];
}

// An O_PATH fd of `path` (absolute or not, "" = top itself) below `top`:
// symlinks resolve inside `top` and never out of it.
static int open_in(int top, const char* path) {
  while (*path == '/') path++;
  if (*path == 0) path = ".";
  if (!no_openat2) {
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, top, path, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) return fd;
    no_openat2 = 1;  // Linux < 5.6
  }
  return walk_in(top, path);
}

// The mount target, resolved inside the root; what is missing is created
// below the root through fds (directories, and an empty file as the last
// component when `file`). A name that exists but resolves to nothing inside
// the root (a dangling symlink) stays an error: nothing is created through
// it. Fails the setup (naming the target) on error.
static int open_target(int root, const char* target, int file) {
  int fd = open_in(root, target);
  if (fd >= 0) return fd;
  if (errno != ENOENT) fail("openat2", target);
  char prefix[PATH_MAX];
  if (snprintf(prefix, sizeof prefix, "%s", target) >= (int)sizeof prefix) {
    errno = ENAMETOOLONG;
    fail("openat2", target);
  }
  int parent = open_in(root, "");
  if (parent < 0) fail("openat2", "/");
  for (char* p = prefix; *p;) {
    while (*p == '/') p++;
    if (*p == 0) break;
    char* name = p;
    p += strcspn(p, "/");
    int last = p[strspn(p, "/")] == 0;
    char saved = *p;
    *p = 0;
    fd = open_in(root, prefix);
    if (fd < 0 && errno == ENOENT) {
      int made;
      if (last && file) {
        made = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (made >= 0) close(made);
      } else {
        made = mkdirat(parent, name, 0755);
      }
      if (made < 0 && errno != EEXIST) fail(last && file ? "openat" : "mkdirat", prefix);
      fd = open_in(root, prefix);
    }
    if (fd < 0) fail("openat2", prefix);
    *p = saved;
    close(parent);
    parent = fd;
  }
  return parent;
}

static void fd_path(int fd, char* buf, size_t len) {
  snprintf(buf, len, "/proc/self/fd/%d", fd);
}

// ---------------------------------------------------------------- mount flags

// Per-mount flags a remount must repeat, or it clears them (statvfs view).
static unsigned long current_flags(const char* path) {
  struct statvfs sv;
  if (statvfs(path, &sv) != 0) return 0;
  unsigned long f = 0;
  if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

static int remount_adding(const char* path, unsigned long flags) {
  return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | current_flags(path), NULL);
}

static int mnt_id_of(int fd) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0) return -1;
  ssize_t n = read(f, buf, sizeof buf - 1);
  close(f);
  buf[n > 0 ? n : 0] = 0;
  const char* m = strstr(buf, "mnt_id:");
  return m ? atoi(m + 7) : -1;
}

// /proc/self/mountinfo in a malloc'd, NUL-terminated buffer (or NULL).
static char* read_mountinfo(void) {
  int f = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (f < 0) return NULL;
  size_t cap = 1 << 16, len = 0;
  char* buf = malloc(cap);
  for (ssize_t n; buf;) {
    if (len + 1 == cap) buf = cap >= (64u << 20) ? (free(buf), NULL) : realloc(buf, cap *= 2);
    if (!buf || (n = read(f, buf + len, cap - len - 1)) <= 0) break;
    len += (size_t)n;
  }
  close(f);
  if (buf) buf[len] = 0;
  return buf;
}

// Mountinfo escapes blanks and backslashes in paths as \ooo.
static void unescape(char* s) {
  char* o = s;
  for (char* i = s; *i; o++) {
    if (i[0] == '\\' && i[1] >= '0' && i[1] <= '7' && i[2] && i[3]) {
      *o = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
      i += 4;
    } else {
      *o = *i++;
    }
  }
  *o = 0;
}

// The < 5.12 way to make a whole tree carry `flags`: remount every mount
// below the one at `fd` (found by parent id in mountinfo), each repeating
// its own flags.
static int remount_below(int fd, unsigned long flags) {
  int top = mnt_id_of(fd);
  char* info = read_mountinfo();
  if (top < 0 || info == NULL) {
    free(info);
    return errno = EIO, -1;
  }
  static int ids[4096];
  int nids = 0, grew = 1, rc = 0;
  ids[nids++] = top;
  while (grew && rc == 0) {
    grew = 0;
    for (char *line = info, *next; line && *line; line = next) {
      next = strchr(line, '\n');
      if (next) *next++ = 0;
      int id, parent;
      char point[PATH_MAX];
      if (sscanf(line, "%d %d %*s %*s %4095s", &id, &parent, point) == 3) {
        int known = 0, child = 0;
        for (int i = 0; i < nids; i++) known |= ids[i] == id, child |= ids[i] == parent;
        if (child && !known && nids < (int)(sizeof ids / sizeof ids[0])) {
          ids[nids++] = id;
          grew = 1;
          unescape(point);
          if (remount_adding(point, flags) != 0) rc = -1;
        }
      }
      if (next) next[-1] = '\n';
    }
  }
  free(info);
  return rc;
}

// Adds `flags` (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC) to the mount at
// `fd`, and to every mount below it when `rec`: never clears one (a bind
// of a nodev image stays nodev). Linux 5.12+: one mount_setattr.
static int add_flags(int fd, unsigned long flags, int rec) {
  char path[64];
  fd_path(fd, path, sizeof path);
  if (!no_mount_setattr) {
    struct {
      uint64_t attr_set, attr_clr, propagation, userns_fd;
    } attr = {0, 0, 0, 0};
    if (flags & MS_RDONLY) attr.attr_set |= MOUNT_ATTR_RDONLY;
    if (flags & MS_NOSUID) attr.attr_set |= MOUNT_ATTR_NOSUID;
    if (flags & MS_NODEV) attr.attr_set |= MOUNT_ATTR_NODEV;
    if (flags & MS_NOEXEC) attr.attr_set |= MOUNT_ATTR_NOEXEC;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &attr, sizeof attr) == 0) return 0;
    if (errno != ENOSYS) return -1;
    no_mount_setattr = 1;  // Linux < 5.12
  }
  if (remount_adding(path, flags) != 0) return -1;
  return rec ? remount_below(fd, flags) : 0;
}

// ---------------------------------------------------------------- the mount list

// The bind source: a host path, or a path resolved inside a resource image.
static int open_source(const struct mnt* m) {
  if (m->source_root[0] == 0) {
    int fd = open(m->source, O_PATH | O_CLOEXEC);
    if (fd < 0) fail("open", m->source);
    return fd;
  }
  int top = open(m->source_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (top < 0) fail("open", m->source_root);
  int fd = open_in(top, m->source);
  if (fd < 0) fail("openat2", m->source);
  close(top);
  return fd;
}

static void mount_one(int root, const struct mnt* m) {
  char target[64], source[64];
  if (m->symlink) {
    // Only ever into a directory we just mounted (the tmpfs /dev).
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", m->target);
    char* slash = strrchr(dir, '/');
    if (slash == NULL) return;
    *slash = 0;
    int parent = open_in(root, dir);
    if (parent < 0) fail("openat2", dir[0] ? dir : "/");
    if (symlinkat(m->data, parent, slash + 1) != 0 && errno != EEXIST) fail("symlinkat", m->target);
    close(parent);
    return;
  }
  if (m->flags & MS_REMOUNT) {
    int fd = open_in(root, m->target);
    if (fd < 0) fail("openat2", m->target);
    if (add_flags(fd, m->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), !!(m->flags & MS_REC)) != 0)
      fail(no_mount_setattr ? "mount(MS_REMOUNT)" : "mount_setattr", m->target);
    close(fd);
    return;
  }
  int src = -1, file = 0;
  if (m->flags & MS_BIND) {
    src = open_source(m);
    struct stat st;
    file = fstat(src, &st) == 0 && !S_ISDIR(st.st_mode);
    fd_path(src, source, sizeof source);
  }
  int fd = open_target(root, m->target, file);
  fd_path(fd, target, sizeof target);
  const char* fstype = m->fstype[0] ? m->fstype : NULL;
  const char* data = m->data[0] ? m->data : NULL;
  if (mount(src >= 0 ? source : m->source[0] ? m->source : NULL, target, fstype, m->flags, data) != 0) fail("mount", m->target);
  close(fd);
  if (src >= 0) close(src);
}

static void mounts(const struct spec* s) {
  // Nothing we mount may propagate back to the runtime's namespace.
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("mount(MS_PRIVATE)", "/");
  // pivot_root needs the new root to be a mount point: a directory root is not.
  if (mount(s->root, s->root, NULL, MS_BIND | MS_REC, NULL) != 0) fail("mount(MS_BIND)", s->root);
  // Opened after the bind, so it is the bind's root every target resolves in.
  int root = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) fail("open", s->root);
  for (int i = 0; i < s->nmounts; i++) mount_one(root, &s->mounts[i]);
  close(root);
}

// pivot_root(".", ".") stacks the old root on top of the new one; detaching
// it leaves only the container's tree. Not chroot: no way back out.
static void pivot(const struct spec* s) {
  int newroot = open(s->root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (newroot < 0) fail("open", s->root);
  if (fchdir(newroot) != 0) fail("fchdir", s->root);
  if (syscall(SYS_pivot_root, ".", ".") != 0) fail("pivot_root", s->root);
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) != 0) fail("mount(MS_SLAVE)", "/");
  if (umount2(".", MNT_DETACH) != 0) fail("umount2", "/");
  if (fchdir(newroot) != 0 || chdir("/") != 0) fail("chdir", "/");
  close(newroot);
}

static int capset_all(uint64_t eff, uint64_t perm, uint64_t inh) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2] = {
      {(uint32_t)eff, (uint32_t)perm, (uint32_t)inh},
      {(uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32)},
  };
  return (int)syscall(SYS_capset, &h, d);
}

static void limits(const struct spec* s) {
  static const char* const names[] = {"cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
                                      "memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime"};
  for (int i = 0; i < s->nrlimits; i++) {
    int r = s->rlimits[i].resource;
    // Raising a hard limit needs CAP_SYS_RESOURCE in the runtime.
    if (setrlimit(r, &s->rlimits[i].value) != 0) fail("setrlimit", r >= 0 && r < 16 ? names[r] : "?");
  }
}

static void setup(struct spec* s, int netfd) {
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  char comm[16];
  snprintf(comm, sizeof comm, "init-%s", s->name ? s->name : "");
  no_openat2 = !!(s->test & TEST_NO_OPENAT2);
  no_mount_setattr = !!(s->test & TEST_NO_MOUNT_SETATTR);
  prctl(PR_SET_NAME, comm, 0, 0, 0);
  network(s, netfd);
  mounts(s);
  pivot(s);
  if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) != 0) fail("sethostname", s->hostname);
  limits(s);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("prctl(PR_SET_PDEATHSIG)", NULL);
}

// ---------------------------------------------------------------- the container process

// In a forked child: report why it could not become the container, then exit
// 101 (what Northstar's panicking init gives).
static void __attribute__((noreturn)) child_fail(int report, const char* step) {
  char buf[128];
  int n = snprintf(buf, sizeof buf, "%d %s", errno, step);
  (void)!write(report, buf, (size_t)n);
  _exit(101);
}

// In a forked child: the manifest's ids. KEEPCAPS keeps init's capabilities
// (in the permitted set) across the uid change for the steps still to come;
// capabilities() then cuts them down to the manifest's.
static void ids(const struct spec* s, int report) {
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) child_fail(report, "prctl(PR_SET_KEEPCAPS)");
  if (setgroups((size_t)s->ngroups, s->groups) != 0) child_fail(report, "setgroups");
  if (setresgid(s->gid, s->gid, s->gid) != 0) child_fail(report, "setresgid");
  if (setresuid(s->uid, s->uid, s->uid) != 0) child_fail(report, "setresuid");
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) != 0) child_fail(report, "capget");
  uint64_t perm = d[0].permitted | (uint64_t)d[1].permitted << 32;
  if (capset_all(perm, perm, 0) != 0) child_fail(report, "capset");
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) child_fail(report, "prctl(PR_SET_KEEPCAPS)");
}

static void sched(const struct spec* s, int report) {
  if (s->sched_policy < 0) return;
  struct sched_param p = {.sched_priority = s->sched_priority};
  if (sched_setscheduler(0, s->sched_policy, &p) != 0) child_fail(report, "sched_setscheduler");
  if (s->sched_nice != NICE_UNSET && setpriority(PRIO_PROCESS, 0, s->sched_nice) != 0)
    child_fail(report, "setpriority");
}

// Bounding set first (needs CAP_SETPCAP), then effective = permitted =
// inheritable = ambient = the manifest's set. Ambient carries them across
// execve for a non-root uid.
static void capabilities(const struct spec* s, int report) {
  for (int c = 0; c < 64; c++) {
    if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) < 0) break;  // past CAP_LAST_CAP
    if (!(s->caps & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) child_fail(report, "prctl(PR_CAPBSET_DROP)");
  }
  if (capset_all(s->caps, s->caps, s->caps) != 0) child_fail(report, "capset");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) child_fail(report, "prctl(PR_CAP_AMBIENT)");
  for (int c = 0; c < 64; c++)
    if ((s->caps & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0)
      child_fail(report, "prctl(PR_CAP_AMBIENT_RAISE)");
}

// Everything from the fork to execve, for the container process and exec'd
// ones alike. Order per spec/launch.md §5.2 step 14: the seccomp filter comes
// before no_new_privs and the capability drop (so a custom allow list must
// permit prctl and capset, as in Northstar).
static void __attribute__((noreturn)) become(const struct spec* s, const char* path, const char* const* argv,
                                             const char* const* envp, int report) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (s->selinux) {
    int fd = open("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, s->selinux, strlen(s->selinux)) < 0) child_fail(report, "write(attr/exec)");
    close(fd);
  }
  // Before the filter, which need not allow them (Northstar sets ids in init).
  ids(s, report);
  // After the uid change, which clears it.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(report, "prctl(PR_SET_PDEATHSIG)");
  sched(s, report);
  if (s->nfilter > 0) {
    // Seccomp hook: the program comes compiled from src/model/seccomp.ts.
    struct sock_fprog prog = {(unsigned short)s->nfilter, s->filter};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) child_fail(report, "prctl(PR_SET_SECCOMP)");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(report, "prctl(PR_SET_NO_NEW_PRIVS)");
  capabilities(s, report);
  execve(path, (char* const*)argv, (char* const*)envp);
  child_fail(report, "execve");
}

// The exec request being forked wants a terminal (T_CTTY): init is single-threaded.
static int exec_ctty;

// An attached exec with a terminal (spec/streams.md): the process leads a new
// session whose controlling tty is its stdin, a pty of the container's devpts.
static void controlling_tty(int report) {
  if (setsid() < 0) child_fail(report, "setsid");
  if (ioctl(0, TIOCSCTTY, 0) != 0) child_fail(report, "ioctl(TIOCSCTTY)");
}

// Forks a process that becomes `path`; waits until it exec'd. Returns its pid,
// or -1 with *why set ("<errno> <step>") when it could not (it then exits 101).
static pid_t fork_process(const struct spec* s, const char* path, const char* const* argv, const char* const* envp,
                          const int* stdio, int keep, char* why, size_t whylen) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) fail("pipe2", NULL);
  pid_t pid = fork();
  if (pid < 0) fail("fork", NULL);
  if (pid == 0) {
    close(report[0]);
    if (stdio) {
      for (int i = 0; i < 3; i++)
        if (dup2(stdio[i], i) < 0) child_fail(report[1], "dup2");
      if (exec_ctty) controlling_tty(report[1]);
    } else {
      // The container process: the control socket goes, the extra fds move
      // down to 3.. (ascending, so no source is overwritten).
      close(CONTROL_FD);
      for (int i = 0; i < keep; i++)
        if (dup3(CONTROL_FD + 1 + i, CONTROL_FD + i, 0) < 0) child_fail(report[1], "dup3");
    }
    int first = stdio ? 3 : CONTROL_FD + keep;
    // Nothing else survives execve (report[1] stays open until then).
    if (report[1] < first) child_fail(report[1], "report fd");
    if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) != 0) child_fail(report[1], "close_range");
    if (!stdio && keep > 0) close(CONTROL_FD + keep);
    become(s, path, argv, envp, report[1]);
  }
  close(report[1]);
  ssize_t n;
  do n = read(report[0], why, whylen - 1);
  while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n > 0) {
    why[n] = 0;
    return -1;
  }
  return pid;
}

// ---------------------------------------------------------------- exec requests

static void exec_request(const struct spec* s, const unsigned char* msg, size_t len, int* fds, int nfds) {
  uint32_t id = 0;
  if (len >= 5) memcpy(&id, msg + 1, 4);
  static struct spec req;
  memset(&req, 0, sizeof req);
  const char* bad = parse(msg + 5, len > 5 ? len - 5 : 0, &req);
  int slot = -1;
  for (int i = 0; i < MAX_EXECS; i++)
    if (execs[i].pid == 0) slot = i;
  char why[128] = "";
  if (bad || nfds < 3 || req.init == NULL || slot < 0) {
    // The container keeps running whatever is wrong with a request.
    send_msg("execfailed %u %d %s", id, nfds < 3 ? EBADF : slot < 0 ? EAGAIN : EINVAL, bad ? bad : "request");
  } else {
    exec_ctty = req.ctty == 1;
    pid_t pid = fork_process(s, req.init, req.argv, req.envp, fds, 0, why, sizeof why);
    exec_ctty = 0;
    if (pid < 0) {
      send_msg("execfailed %u %s", id, why);
    } else {
      execs[slot].pid = pid;
      execs[slot].id = id;
      send_msg("forked %u %d", id, pid);
    }
  }
  for (int i = 0; i < nfds; i++) close(fds[i]);
}

// ---------------------------------------------------------------- main

static void status_text(int status, char* out, size_t len) {
  if (WIFSIGNALED(status)) snprintf(out, len, "signal %d", WTERMSIG(status));
  else snprintf(out, len, "code %d", WEXITSTATUS(status));
}

// Reaps every child (we are PID 1: orphans land here too). Returns 1 when the
// container process was among them.
static int reap(pid_t main_pid) {
  int done = 0, status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (!WIFEXITED(status) && !WIFSIGNALED(status)) continue;
    char text[32];
    status_text(status, text, sizeof text);
    if (pid == main_pid) {
      send_msg("exit %s", text);
      done = 1;
      continue;
    }
    for (int i = 0; i < MAX_EXECS; i++)
      if (execs[i].pid == pid) {
        send_msg("execexit %u %s", execs[i].id, text);
        execs[i].pid = 0;
      }
  }
  return done;
}

static void on_gate_signal(int sig) { gate_signal = sig; }

static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};

// As PID 1 we only get the signals we handle. Until the gate opens, a stop
// (SIGTERM/SIGINT/SIGHUP to the group) ends the start at once instead of
// waiting for the SIGKILL after the grace period. They stay blocked except
// inside ppoll, so none is lost between a check and the wait.
static void catch_stop_signals(void) {
  sigset_t set;
  sigemptyset(&set);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_gate_signal;
  for (int i = 0; i < 3; i++) {
    sigaddset(&set, stop_signals[i]);
    sigaction(stop_signals[i], &sa, NULL);
  }
  sigprocmask(SIG_BLOCK, &set, NULL);
}

static void __attribute__((noreturn)) stopped_at_gate(void) {
  send_msg("exit signal %d", (int)gate_signal);
  _exit(0);
}

static void wait_gate(void) {
  sigset_t open;
  sigprocmask(SIG_SETMASK, NULL, &open);
  for (int i = 0; i < 3; i++) sigdelset(&open, stop_signals[i]);
  for (;;) {
    if (gate_signal) stopped_at_gate();
    struct pollfd p = {CONTROL_FD, POLLIN, 0};
    if (ppoll(&p, 1, NULL, &open) < 0) {
      if (errno == EINTR) continue;
      fail("ppoll", NULL);
    }
    unsigned char* msg = NULL;
    int fds[8], nfds = 0;
    ssize_t n = recv_msg(&msg, fds, &nfds);
    if (n <= 0) _exit(1);  // the runtime gave up on this start
    for (int i = 0; i < nfds; i++) close(fds[i]);
    int gate = msg[0] == 'G';
    free(msg);
    if (!gate) continue;
    // A stop that raced the gate still wins.
    sigset_t pending;
    sigpending(&pending);
    for (int i = 0; i < 3; i++)
      if (sigismember(&pending, stop_signals[i])) gate_signal = stop_signals[i];
    if (gate_signal) stopped_at_gate();
    // From here on the signals are the container process's business.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &dfl, NULL);
    return;
  }
}

int main(int argc, char** argv) {
  int64_t t0 = now_us();
  // The runtime runs with umask 077 for its own files; the container (and the
  // mount points made here) get the conventional 022 instead.
  umask(022);
  static struct spec s;
  s.sched_policy = -1;
  s.sched_nice = NICE_UNSET;
  catch_stop_signals();
  unsigned char* buf = NULL;
  int spec_fds[8], spec_nfds = 0;
  ssize_t len = recv_msg(&buf, spec_fds, &spec_nfds);
  if (len <= 0) _exit(1);
  const char* bad = parse(buf, (size_t)len, &s);  // s points into buf, which lives until exit
  errno = EINVAL;
  if (bad) fail("spec", bad);
  if (s.root == NULL || s.init == NULL) fail("spec", "root and init are required");

  // The spec message carries at most the prepared network namespace (NET_FD).
  int netfd = s.net == NET_FD && spec_nfds > 0 ? spec_fds[0] : -1;
  for (int i = 0; i < spec_nfds; i++)
    if (spec_fds[i] != netfd) close(spec_fds[i]);
  setup(&s, netfd);
  send_msg("ready %lld %lld %lld", (long long)(now_us() - t0), (long long)t0, (long long)now_us());
  wait_gate();

  // SIGCHLD through a signalfd: one poll loop over it and the control socket.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) fail("signalfd", NULL);

  int64_t t1 = now_us();
  char why[128] = "";
  pid_t main_pid = fork_process(&s, s.init, s.argv, s.envp, NULL, s.nfds, why, sizeof why);
  // The console and socket fds belong to the container process only.
  for (int i = 0; i < s.nfds; i++) close(CONTROL_FD + 1 + i);
  if (main_pid < 0) {
    send_msg("failed %s", why);
    int status;
    while (wait(&status) < 0 && errno == EINTR) {
    }
    char text[32];
    status_text(status, text, sizeof text);
    send_msg("exit %s", text);
    _exit(0);
  }
  send_msg("started %d %lld %lld %lld", main_pid, (long long)(now_us() - t1), (long long)t1, (long long)now_us());

  struct pollfd pfd[2] = {{sfd, POLLIN, 0}, {CONTROL_FD, POLLIN, 0}};
  for (;;) {
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll", NULL);
    }
    if (pfd[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      if (reap(main_pid)) _exit(0);  // the kernel kills the rest of the namespace
    }
    if (pfd[1].revents) {
      unsigned char* msg = NULL;
      int fds[8], nfds = 0;
      ssize_t n = recv_msg(&msg, fds, &nfds);
      if (n <= 0) {
        // The runtime is gone: take the whole namespace down with us.
        kill(-1, SIGKILL);
        _exit(1);
      }
      if (msg[0] == 'X') exec_request(&s, msg, (size_t)n, fds, nfds);
      else
        for (int i = 0; i < nfds; i++) close(fds[i]);
      free(msg);
    }
  }
}
