// pty module: terminals for attached exec (spec/streams.md). The pty comes
// from the container's own devpts instance: its ptmx is opened through the
// container's root fd with RESOLVE_IN_ROOT, and the peer (slave) end is
// taken with TIOCGPTPEER, never by a path. Host tty fds never reach a
// container (TIOCSTI injection). Any thread; no static mutable state.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace nstar {
namespace {

// ptyOpen(rootFd) -> {master, slave, index}: both O_CLOEXEC, the master
// non-blocking; the slave is not our controlling tty (O_NOCTTY).
Napi::Value PtyOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int root = info[0].As<Napi::Number>().Int32Value();
  open_how how{};
  how.flags = O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
  int master = (int)syscall(SYS_openat2, root, "dev/pts/ptmx", &how, sizeof how);
  if (master < 0) ThrowErrno(env, errno, "openat2", "/dev/pts/ptmx");
  int unlock = 0, index = -1;
  if (ioctl(master, TIOCSPTLCK, &unlock) != 0 || ioctl(master, TIOCGPTN, &index) != 0) {
    int err = errno;
    close(master);
    ThrowErrno(env, err, "ioctl(TIOCSPTLCK)", "/dev/pts/ptmx");
  }
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    int err = errno;
    close(master);
    ThrowErrno(env, err, "ioctl(TIOCGPTPEER)", "/dev/pts/ptmx");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("master", master);
  o.Set("slave", slave);
  o.Set("index", index);
  return o;
}

// ptyResize(fd, cols, rows): TIOCSWINSZ (the foreground process group gets SIGWINCH).
Napi::Value PtyResize(const Napi::CallbackInfo& info) {
  winsize ws{};
  ws.ws_col = (unsigned short)info[1].As<Napi::Number>().Uint32Value();
  ws.ws_row = (unsigned short)info[2].As<Napi::Number>().Uint32Value();
  if (ioctl(info[0].As<Napi::Number>().Int32Value(), TIOCSWINSZ, &ws) != 0) ThrowErrno(info.Env(), errno, "ioctl(TIOCSWINSZ)");
  return info.Env().Undefined();
}

// dupFd(fd) -> a new fd (O_CLOEXEC) for the same open file: a second libuv handle needs its own fd.
Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), errno, "fcntl(F_DUPFD_CLOEXEC)");
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void RegisterPty(Napi::Env env, Napi::Object exports) {
  exports.Set("ptyOpen", Napi::Function::New(env, PtyOpen, "ptyOpen"));
  exports.Set("ptyResize", Napi::Function::New(env, PtyResize, "ptyResize"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
}

}  // namespace nstar
