// process module: spawning nstar-init with clone, watching it through its
// pidfd, and reading a control socket — all on the main thread's libuv loop.
//
// Rules (ARCHITECTURE.md "Threads and processes"):
// - Node is multi-threaded, so after clone the child makes only raw,
//   async-signal-safe syscalls and execve()s nstar-init. Every allocation
//   (argv, envp, the fd plan) happens before the clone. We use glibc's
//   clone() rather than a raw clone3: CLONE_VM|CLONE_VFORK needs a separate
//   stack and a trampoline, which clone() provides; the flags (CLONE_PIDFD and
//   the namespaces) are the same.
// - Exit watching: CLONE_PIDFD + uv_poll on the pidfd + waitid(P_PIDFD). No
//   SIGCHLD handler, no thread per child, never waitpid(-1): libuv reaps its
//   own children by pid, we reap only pids we created.
// - No static mutable state: per-child state lives on the heap, owned by the
//   poll handle and the JS closures (shared_ptr), torn down by env cleanup hooks.
// Kernel floor: CLONE_PIDFD (5.2), pidfd_send_signal (5.1), poll on a pidfd
// (5.3), waitid(P_PIDFD) (5.4), close_range(CLOSE_RANGE_CLOEXEC) (5.11).
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace nstar {
namespace {

// ---------------------------------------------------------------- spawn

// What the child reports through the CLOEXEC error pipe when it cannot exec.
struct ChildError {
  int err;
  int step;
};
const char* const kSteps[] = {"prctl(PR_SET_PDEATHSIG)", "setsid", "fcntl(F_DUPFD_CLOEXEC)", "dup2",
                              "close_range", "execve"};

// What the child needs; prepared by the parent, read-only in the child.
struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;
  const int* fds;
  size_t nfds;
  int base;
  int errfd;
};

// The child after clone: raw syscalls only, then execve. It shares the
// parent's memory (CLONE_VM) until execve, so it writes nothing but its own
// stack; the parent thread is suspended meanwhile (CLONE_VFORK).
int ChildMain(void* arg) {
  const ChildArgs& a = *static_cast<const ChildArgs*>(arg);
  // Our own copy of the dispositions (no CLONE_SIGHAND): Node's handlers
  // must never run here, and ignored signals would stay ignored after exec.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  int step = 0;
  int tmp[64];
  // The runtime dying kills init (and with it the whole pid namespace).
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) goto fail;
  // A session and process group of its own: kill(-pid) reaches everything.
  step = 1;
  if (setsid() < 0) goto fail;
  // fds[i] becomes fd i: first move every source above all targets, so no
  // dup2 overwrites a source that is still needed.
  step = 2;
  for (size_t i = 0; i < a.nfds; i++)
    if ((tmp[i] = fcntl(a.fds[i], F_DUPFD_CLOEXEC, a.base)) < 0) goto fail;
  step = 3;
  for (size_t i = 0; i < a.nfds; i++)
    if (dup2(tmp[i], static_cast<int>(i)) < 0) goto fail;
  // Everything else closes at execve (the error pipe too, which is how the
  // parent learns that exec happened). close_range CLOEXEC: Linux >= 5.11.
  step = 4;
  if (syscall(SYS_close_range, a.nfds, ~0U, CLOSE_RANGE_CLOEXEC) != 0) goto fail;
  step = 5;
  execve(a.path, a.argv, a.envp);
fail:
  ChildError e{errno, step};
  (void)!write(a.errfd, &e, sizeof e);
  _exit(127);
}

struct StringArray {
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
  explicit StringArray(Napi::Array a) {
    for (uint32_t i = 0; i < a.Length(); i++) strings.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    for (auto& s : strings) ptrs.push_back(const_cast<char*>(s.c_str()));
    ptrs.push_back(nullptr);
  }
};

Napi::Object StatusObject(Napi::Env env, const siginfo_t& si) {
  Napi::Object status = Napi::Object::New(env);
  Napi::Object inner = Napi::Object::New(env);
  if (si.si_code == CLD_EXITED) {
    inner.Set("code", si.si_status);
    status.Set("exit", inner);
  } else {
    inner.Set("signal", si.si_status);
    status.Set("signalled", inner);
  }
  return status;
}

// ---------------------------------------------------------------- fd watchers

// One uv_poll over an fd we own, calling back into JS. Shared between the
// poll handle (until uv_close completes) and the JS closures that reference it.
struct Watch {
  napi_env env = nullptr;
  uv_poll_t poll{};
  int fd = -1;
  pid_t pid = 0;           // pidfd watches only
  bool reaped = false;     // pidfd watches only
  bool polling = false;
  Napi::FunctionReference callback;
  std::shared_ptr<Watch>* holder = nullptr;  // the poll handle's reference
};

void OnClosed(uv_handle_t* h) { delete static_cast<std::shared_ptr<Watch>*>(h->data); }

void CleanupHook(void* arg);

// Stops polling and closes the fd; the Watch lives on while JS holds it.
void Stop(Watch& w) {
  if (w.polling) {
    w.polling = false;
    napi_remove_env_cleanup_hook(w.env, CleanupHook, &w);
    uv_poll_stop(&w.poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&w.poll), OnClosed);
  }
  if (w.fd >= 0) {
    close(w.fd);
    w.fd = -1;
  }
}

// The env is going away (worker exit, process exit): release everything.
void CleanupHook(void* arg) {
  Watch* w = static_cast<Watch*>(arg);
  w->polling = false;  // the hook is being run, so it must not be removed
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
  w->callback.Reset();
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
}

void CallJs(Watch& w, std::initializer_list<napi_value> args) {
  Napi::Env env(w.env);
  Napi::HandleScope scope(env);
  if (w.callback.IsEmpty()) return;
  try {
    w.callback.MakeCallback(Napi::Object::New(env), args);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(w.env, e.Value());
  }
}

bool StartPoll(Napi::Env env, const std::shared_ptr<Watch>& w, uv_poll_cb cb) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return false;
  if (uv_poll_init(loop, &w->poll, w->fd) != 0) return false;
  w->holder = new std::shared_ptr<Watch>(w);
  w->poll.data = w->holder;
  w->polling = true;
  napi_add_env_cleanup_hook(env, CleanupHook, w.get());
  uv_poll_start(&w->poll, UV_READABLE, cb);
  return true;
}

// pidfd readable: the child exited. Reap it, then report its status.
void OnPidfd(uv_poll_t* handle, int status, int events) {
  Watch& w = **static_cast<std::shared_ptr<Watch>*>(handle->data);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r = waitid(static_cast<idtype_t>(P_PIDFD), w.fd, &si, WEXITED | WNOHANG);
  if (r == 0 && si.si_pid == 0) return;  // spurious wakeup
  if (r != 0 && errno == EINTR) return;
  std::shared_ptr<Watch> keep = *static_cast<std::shared_ptr<Watch>*>(handle->data);
  w.reaped = true;
  Stop(w);
  Napi::Env env(w.env);
  Napi::HandleScope scope(env);
  if (r != 0) {
    CallJs(w, {Napi::Value(ErrnoError(env, errno, "waitid"))});
  } else {
    CallJs(w, {Napi::Value(StatusObject(env, si))});
  }
  w.callback.Reset();
}

// spawn({path, argv, envp, fds, cloneFlags}, onExit) -> {pid, pidfd, signal(sig), signalGroup(sig), reaped()}
//   fds[i] becomes fd i of the child; everything else is closed at exec.
//   onExit({exit:{code}} | {signalled:{signal}}) runs once, after the reap.
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Function onExit = info[1].As<Napi::Function>();
  std::string path = o.Get("path").As<Napi::String>().Utf8Value();
  StringArray argv(o.Get("argv").As<Napi::Array>());
  StringArray envp(o.Get("envp").As<Napi::Array>());
  Napi::Array fdArray = o.Get("fds").As<Napi::Array>();
  uint64_t flags = o.Has("cloneFlags") ? static_cast<uint64_t>(o.Get("cloneFlags").As<Napi::Number>().Int64Value()) : 0;
  std::vector<int> fds;
  int base = 3;
  for (uint32_t i = 0; i < fdArray.Length(); i++) {
    fds.push_back(fdArray.Get(i).As<Napi::Number>().Int32Value());
    base = std::max(base, fds.back() + 1);
  }
  if (fds.size() > 64) throw Napi::RangeError::New(env, "spawn: at most 64 fds");
  base = std::max(base, static_cast<int>(fds.size()));

  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) ThrowErrno(env, errno, "pipe2");
  base = std::max(base, std::max(errpipe[0], errpipe[1]) + 1);

  // clone(CLONE_VM | CLONE_VFORK) like posix_spawn: no copy of Node's page
  // tables, the calling thread waits until the child has exec'd. All signals
  // stay blocked across the clone so no handler of Node's runs in the child.
  const size_t stackSize = 64 * 1024;
  void* stack = mmap(nullptr, stackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int err = errno;
    close(errpipe[0]);
    close(errpipe[1]);
    ThrowErrno(env, err, "mmap");
  }
  ChildArgs childArgs{path.c_str(), argv.ptrs.data(), envp.ptrs.data(), fds.data(), fds.size(), base, errpipe[1]};
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  // CLONE_PIDFD (Linux >= 5.2) puts the pidfd where the parent_tid pointer points.
  int pid = clone(ChildMain, static_cast<char*>(stack) + stackSize,
                  CLONE_VM | CLONE_VFORK | CLONE_PIDFD | static_cast<int>(flags) | SIGCHLD, &childArgs, &pidfd);
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, stackSize);
  close(errpipe[1]);
  if (pid < 0) {
    close(errpipe[0]);
    ThrowErrno(env, cloneErr, "clone", path);
  }
  // Blocks until the child execs (EOF) or reports why it could not.
  ChildError ce{0, 0};
  ssize_t n;
  do n = read(errpipe[0], &ce, sizeof ce);
  while (n < 0 && errno == EINTR);
  close(errpipe[0]);
  if (n == sizeof ce) {
    siginfo_t si;
    waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &si, WEXITED);
    close(pidfd);
    ThrowErrno(env, ce.err, kSteps[ce.step < 6 ? ce.step : 5], path);
  }

  auto w = std::make_shared<Watch>();
  w->env = env;
  w->fd = pidfd;
  w->pid = static_cast<pid_t>(pid);
  w->callback = Napi::Persistent(onExit);
  if (!StartPoll(env, w, OnPidfd)) {
    kill(static_cast<pid_t>(pid), SIGKILL);
    siginfo_t si;
    waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &si, WEXITED);
    close(pidfd);
    ThrowErrno(env, EIO, "uv_poll_init");
  }

  Napi::Object r = Napi::Object::New(env);
  r.Set("pid", static_cast<double>(pid));
  r.Set("pidfd", pidfd);
  // signal(sig): pidfd_send_signal to init only. False once reaped or ESRCH.
  r.Set("signal", Napi::Function::New(env, [w](const Napi::CallbackInfo& i) -> Napi::Value {
          Napi::Env env = i.Env();
          int sig = i[0].As<Napi::Number>().Int32Value();
          if (w->reaped || w->fd < 0) return Napi::Boolean::New(env, false);
          if (syscall(SYS_pidfd_send_signal, w->fd, sig, nullptr, 0) == 0) return Napi::Boolean::New(env, true);
          if (errno == ESRCH) return Napi::Boolean::New(env, false);
          ThrowErrno(env, errno, "pidfd_send_signal");
        }));
  // signalGroup(sig): kill(-pid). Safe against pid reuse: the pid (and its
  // group) cannot be recycled before we reap it, and we check that first.
  r.Set("signalGroup", Napi::Function::New(env, [w](const Napi::CallbackInfo& i) -> Napi::Value {
          Napi::Env env = i.Env();
          int sig = i[0].As<Napi::Number>().Int32Value();
          if (w->reaped) return Napi::Boolean::New(env, false);
          if (kill(-w->pid, sig) == 0) return Napi::Boolean::New(env, true);
          if (errno == ESRCH) return Napi::Boolean::New(env, false);
          ThrowErrno(env, errno, "kill");
        }));
  r.Set("reaped", Napi::Function::New(env, [w](const Napi::CallbackInfo& i) -> Napi::Value {
          return Napi::Boolean::New(i.Env(), w->reaped);
        }));
  return r;
}

// At most this many recv() per readiness callback. The poll is level-triggered:
// what is left is read on the loop's next turn, after the timers, the console
// and every other fd had theirs. A peer that writes faster than we read can
// therefore never hold the main thread (it once looped until EAGAIN).
constexpr int kReadsPerTurn = 8;

// Readable message socket: deliver each message (seqpacket/datagram) or
// chunk (stream) as a Buffer; null once at EOF or error, then the fd is closed.
void OnMessages(uv_poll_t* handle, int status, int events) {
  std::shared_ptr<Watch> keep = *static_cast<std::shared_ptr<Watch>*>(handle->data);
  Watch& w = *keep;
  Napi::Env env(w.env);
  for (int reads = 0; reads < kReadsPerTurn; reads++) {
    if (!w.polling) return;  // the callback closed us
    char buf[65536];
    ssize_t n = recv(w.fd, buf, sizeof buf, MSG_DONTWAIT);
    // A peer that closed with our messages unread in its queue makes the
    // kernel report ECONNRESET once; what it sent before is still queued.
    if (n < 0 && (errno == EINTR || errno == ECONNRESET)) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    Napi::HandleScope scope(env);
    if (n <= 0) {
      Stop(w);
      CallJs(w, {env.Null()});
      w.callback.Reset();
      return;
    }
    CallJs(w, {Napi::Buffer<char>::Copy(env, buf, static_cast<size_t>(n))});
  }
}

// watchMessages(fd, onMessage) -> {close()}; takes ownership of fd.
Napi::Value WatchMessages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto w = std::make_shared<Watch>();
  w->env = env;
  w->fd = info[0].As<Napi::Number>().Int32Value();
  w->callback = Napi::Persistent(info[1].As<Napi::Function>());
  if (!StartPoll(env, w, OnMessages)) ThrowErrno(env, EIO, "uv_poll_init");
  Napi::Object r = Napi::Object::New(env);
  r.Set("close", Napi::Function::New(env, [w](const Napi::CallbackInfo& i) -> Napi::Value {
          Stop(*w);
          w->callback.Reset();
          return i.Env().Undefined();
        }));
  return r;
}

// dup(fd) -> a new fd (O_CLOEXEC) for the same open file: a second owner of
// a pipe, so that the first one closing (a worker thread exiting closes what
// it wrapped) does not close the pipe itself. Any thread.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
  return Napi::Number::New(env, fd);
}

// ---------------------------------------------------------------- netns

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

void RegisterProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsCreate", Napi::Function::New(env, NetnsCreate, "netnsCreate"));
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
  exports.Set("watchMessages", Napi::Function::New(env, WatchMessages, "watchMessages"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
}

}  // namespace nstar
