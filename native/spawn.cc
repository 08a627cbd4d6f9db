// spawn: starting nstar-init with clone and watching it through its pidfd
// until it is reaped. Main thread: the runtime calls it there, and the exit
// watch runs on the calling thread's libuv loop (FdWatch, fd-watch.h).
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
// - No static mutable state: per-child state lives in its exit watch, shared
//   by the poll handle and the JS functions of the child's handle.
// Kernel floor: CLONE_PIDFD (5.2), pidfd_send_signal (5.1), poll on a pidfd
// (5.3), waitid(P_PIDFD) (5.4), close_range(CLOSE_RANGE_CLOEXEC) (5.11).
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "fd-watch.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace nstar {
namespace {

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

// The pidfd of a child we spawned: readable once the child has exited.
class ExitWatch : public FdWatch {
 public:
  explicit ExitWatch(pid_t pid) : pid(pid) {}
  const pid_t pid;
  bool reaped = false;

 protected:
  // Reap, then report the status (the pidfd is closed by then).
  void OnReadable(int status) override {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r = waitid(static_cast<idtype_t>(P_PIDFD), fd(), &si, WEXITED | WNOHANG);
    if (r == 0 && si.si_pid == 0) return;  // spurious wakeup
    int err = errno;
    if (r != 0 && err == EINTR) return;
    reaped = true;
    Napi::Env env = Env();
    Finish({r != 0 ? ErrnoError(env, err, "waitid") : StatusObject(env, si)});
  }
};

// What spawn() was asked for, copied out of JS before the clone.
struct SpawnPlan {
  std::string path;
  StringArray argv;
  StringArray envp;
  std::vector<int> fds;
  int flags;
  int base = 3;  // the lowest fd above every source and target of the fd plan

  SpawnPlan(Napi::Env env, Napi::Object o)
      : path(o.Get("path").As<Napi::String>().Utf8Value()),
        argv(o.Get("argv").As<Napi::Array>()),
        envp(o.Get("envp").As<Napi::Array>()),
        flags(o.Has("cloneFlags") ? static_cast<int>(static_cast<uint64_t>(o.Get("cloneFlags").As<Napi::Number>().Int64Value())) : 0) {
    Napi::Array fdArray = o.Get("fds").As<Napi::Array>();
    for (uint32_t i = 0; i < fdArray.Length(); i++) {
      fds.push_back(fdArray.Get(i).As<Napi::Number>().Int32Value());
      base = std::max(base, fds.back() + 1);
    }
    if (fds.size() > 64) throw Napi::RangeError::New(env, "spawn: at most 64 fds");
    base = std::max(base, static_cast<int>(fds.size()));
  }
};

// clone(CLONE_VM | CLONE_VFORK) like posix_spawn: no copy of Node's page
// tables, the calling thread waits until the child has exec'd. All signals
// stay blocked across the clone so no handler of Node's runs in the child.
// Returns the pid with its pidfd in `*pidfd`; throws when the child could not
// exec (it is reaped by then).
pid_t CloneAndExec(Napi::Env env, SpawnPlan& plan, int* pidfd) {
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) ThrowErrno(env, errno, "pipe2");
  int base = std::max(plan.base, std::max(errpipe[0], errpipe[1]) + 1);

  const size_t stackSize = 64 * 1024;
  void* stack = mmap(nullptr, stackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int err = errno;
    close(errpipe[0]);
    close(errpipe[1]);
    ThrowErrno(env, err, "mmap");
  }
  ChildArgs childArgs{plan.path.c_str(), plan.argv.ptrs.data(), plan.envp.ptrs.data(), plan.fds.data(), plan.fds.size(), base, errpipe[1]};
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  // CLONE_PIDFD (Linux >= 5.2) puts the pidfd where the parent_tid pointer points.
  int pid = clone(ChildMain, static_cast<char*>(stack) + stackSize,
                  CLONE_VM | CLONE_VFORK | CLONE_PIDFD | plan.flags | SIGCHLD, &childArgs, pidfd);
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, stackSize);
  close(errpipe[1]);
  if (pid < 0) {
    close(errpipe[0]);
    ThrowErrno(env, cloneErr, "clone", plan.path);
  }
  // Blocks until the child execs (EOF) or reports why it could not.
  ChildError ce{0, 0};
  ssize_t n;
  do n = read(errpipe[0], &ce, sizeof ce);
  while (n < 0 && errno == EINTR);
  close(errpipe[0]);
  if (n == sizeof ce) {
    siginfo_t si;
    waitid(static_cast<idtype_t>(P_PIDFD), *pidfd, &si, WEXITED);
    close(*pidfd);
    ThrowErrno(env, ce.err, kSteps[ce.step < 6 ? ce.step : 5], plan.path);
  }
  return static_cast<pid_t>(pid);
}

// The JS side of a running child: {pid, pidfd, signal(sig), signalGroup(sig), reaped()}.
void AddChildMethods(Napi::Env env, Napi::Object r, const std::shared_ptr<ExitWatch>& w, int pidfd) {
  r.Set("pid", static_cast<double>(w->pid));
  r.Set("pidfd", pidfd);
  // signal(sig): pidfd_send_signal to init only. False once reaped or ESRCH.
  r.Set("signal", Napi::Function::New(env, [w](const Napi::CallbackInfo& i) -> Napi::Value {
          Napi::Env env = i.Env();
          int sig = i[0].As<Napi::Number>().Int32Value();
          if (w->reaped || w->fd() < 0) return Napi::Boolean::New(env, false);
          if (syscall(SYS_pidfd_send_signal, w->fd(), sig, nullptr, 0) == 0) return Napi::Boolean::New(env, true);
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
}

// spawn({path, argv, envp, fds, cloneFlags}, onExit) -> {pid, pidfd, signal(sig), signalGroup(sig), reaped()}
//   fds[i] becomes fd i of the child; everything else is closed at exec.
//   onExit({exit:{code}} | {signalled:{signal}}) runs once, after the reap.
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SpawnPlan plan(env, info[0].As<Napi::Object>());
  Napi::Function onExit = info[1].As<Napi::Function>();
  int pidfd = -1;
  pid_t pid = CloneAndExec(env, plan, &pidfd);
  auto w = std::make_shared<ExitWatch>(pid);
  Napi::Object r;
  try {
    r = w->Start(env, pidfd, onExit, "nstar.spawn");
  } catch (const Napi::Error&) {
    // Nobody could reap it later: end it here.
    kill(pid, SIGKILL);
    siginfo_t si;
    waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &si, WEXITED);
    close(pidfd);
    throw;
  }
  AddChildMethods(env, r, w, pidfd);
  return r;
}

}  // namespace

void RegisterSpawn(Napi::Env env, Napi::Object exports) {
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
}

}  // namespace nstar
