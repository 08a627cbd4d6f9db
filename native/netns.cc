// netns: a fresh network namespace with lo up, for a start to join.
// Threads: netnsCreate and its callback run on the calling thread (the main
// thread); a libuv pool thread starts and joins a short-lived pthread that
// does the unshare, so no thread of Node's ever changes namespace. No static
// mutable state.
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace nstar {
namespace {

// A fresh network namespace, made off the main thread so that a start can
// join it (setns) instead of paying CLONE_NEWNET in its clone — the largest
// part of a clone with namespaces (~0.4 ms here). A short-lived pthread
// unshares it and opens its nsfs file: the namespace change dies with that
// thread, so no thread of Node's (the libuv pool's included) ever runs in it.
struct NetnsResult {
  int fd = -1;
  int err = 0;
  const char* step = "";
};

void* NetnsThread(void* arg) {
  auto* r = static_cast<NetnsResult*>(arg);
  if (unshare(CLONE_NEWNET) != 0) {
    r->err = errno;
    r->step = "unshare(CLONE_NEWNET)";
    return nullptr;
  }
  // lo up here, in the new namespace: init then only joins it (no rtnl_lock on the start path).
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    r->err = errno;
    r->step = "socket(AF_INET)";
    return nullptr;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  int ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  }
  if (!ok) {
    r->err = errno;
    r->step = "ioctl(SIOCSIFFLAGS)";
    close(s);
    return nullptr;
  }
  close(s);
  r->fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (r->fd < 0) {
    r->err = errno;
    r->step = "open";
  }
  return nullptr;
}

class NetnsWorker : public Napi::AsyncWorker {
 public:
  explicit NetnsWorker(Napi::Function cb) : Napi::AsyncWorker(cb, "nstar.netns") {}

  void Execute() override {
    pthread_t t;
    int e = pthread_create(&t, nullptr, NetnsThread, &result_);
    if (e != 0) {
      result_.err = e;
      result_.step = "pthread_create";
      return;
    }
    pthread_join(t, nullptr);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (result_.fd < 0) {
      Callback().Call({ErrnoError(env, result_.err, result_.step, "/proc/thread-self/ns/net")});
      return;
    }
    Callback().Call({env.Null(), Napi::Number::New(env, result_.fd)});
  }

 private:
  NetnsResult result_;
};

// netnsCreate(cb(err, fd)): the fd of a new network namespace (O_CLOEXEC), or an errno error.
Napi::Value NetnsCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    Napi::TypeError::New(env, "netnsCreate(callback)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  (new NetnsWorker(info[0].As<Napi::Function>()))->Queue();
  return env.Undefined();
}

}  // namespace

void RegisterNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsCreate", Napi::Function::New(env, NetnsCreate, "netnsCreate"));
}

}  // namespace nstar
