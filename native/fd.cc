// fd module: file descriptor primitives Node lacks — memfd + seals (mem
// repositories), socketpairs (control channels, `io: pipe`, consoles), the
// manifest's AF_UNIX listening sockets, sending fds with SCM_RIGHTS, and dup.
// Any thread; every fd is opened O_CLOEXEC and belongs to the caller, who
// closes it (fs.closeSync works for all of them). No static mutable state.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common.h"

namespace nstar {
namespace {

int SocketType(Napi::Env env, const std::string& t) {
  if (t == "stream") return SOCK_STREAM;
  if (t == "datagram" || t == "dgram") return SOCK_DGRAM;
  if (t == "seq_packet" || t == "seqpacket") return SOCK_SEQPACKET;
  throw Napi::TypeError::New(env, "socket type must be stream, datagram or seq_packet, got `" + t + "`");
}

// memfdCreate(name, flags) -> fd
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  unsigned flags = info[1].IsUndefined() ? MFD_CLOEXEC : info[1].As<Napi::Number>().Uint32Value();
  int fd = memfd_create(name.c_str(), flags | MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create", name);
  return Napi::Number::New(env, fd);
}

// addSeals(fd, seals)
Napi::Value AddSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int seals = info[1].As<Napi::Number>().Int32Value();
  if (fcntl(fd, F_ADD_SEALS, seals) != 0) ThrowErrno(env, errno, "fcntl(F_ADD_SEALS)");
  return env.Undefined();
}

// socketpair(type) -> [fd, fd], both blocking (Node makes its end non-blocking itself).
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type = SocketType(env, info[0].IsUndefined() ? "stream" : info[0].As<Napi::String>().Utf8Value());
  int sv[2];
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) ThrowErrno(env, errno, "socketpair");
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, sv[0]);
  a.Set(1u, sv[1]);
  return a;
}

// unixSocket({path, type, mode, uid?, gid?, passcred?}) -> fd of a bound
// (and, for stream/seq_packet, listening) socket. A stale file is replaced.
Napi::Value UnixSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  std::string path = o.Get("path").As<Napi::String>().Utf8Value();
  int type = SocketType(env, o.Get("type").As<Napi::String>().Utf8Value());
  mode_t mode = o.Get("mode").As<Napi::Number>().Uint32Value();
  uid_t uid = o.Has("uid") && !o.Get("uid").IsUndefined() ? o.Get("uid").As<Napi::Number>().Uint32Value() : (uid_t)-1;
  gid_t gid = o.Has("gid") && !o.Get("gid").IsUndefined() ? o.Get("gid").As<Napi::Number>().Uint32Value() : (gid_t)-1;
  bool passcred = o.Has("passcred") && o.Get("passcred").ToBoolean().Value();

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) ThrowErrno(env, ENAMETOOLONG, "bind", path);
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", path);
  auto fail = [&](const char* syscall) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, syscall, path);
  };
  int one = 1;
  if (passcred && setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) fail("setsockopt(SO_PASSCRED)");
  if (unlink(path.c_str()) != 0 && errno != ENOENT) fail("unlink");
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
  if (type != SOCK_DGRAM && listen(fd, SOMAXCONN) != 0) fail("listen");
  if (chmod(path.c_str(), mode) != 0) fail("chmod");
  if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path.c_str(), uid, gid) != 0) fail("chown");
  return Napi::Number::New(env, fd);
}

// sendMessage(fd, data: Buffer, fds?: number[]): one sendmsg, fds as
// SCM_RIGHTS. Never blocks: EAGAIN is an error (control messages are tiny).
Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    Napi::Array a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  char dummy = 0;
  iovec iov{data.Length() ? data.Data() : &dummy, data.Length() ? data.Length() : 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (fds.empty() ? 1 : fds.size())));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "sendmsg");
  return Napi::Number::New(env, static_cast<double>(n));
}

// dup(fd) -> a new fd (O_CLOEXEC) for the same open file: a second owner of
// a pipe, so that the first one closing (a worker thread exiting closes what
// it wrapped) does not close the pipe itself.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
  return Napi::Number::New(env, fd);
}

}  // namespace

void RegisterFd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("addSeals", Napi::Function::New(env, AddSeals, "addSeals"));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("unixSocket", Napi::Function::New(env, UnixSocket, "unixSocket"));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage, "sendMessage"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
}

}  // namespace nstar
