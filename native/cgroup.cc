// cgroup module of the nstar addon: what Node lacks for cgroup v1 OOM
// notification — an eventfd, and a watch that polls it with uv_poll on the
// calling thread's event loop (the main thread in the runtime).
//
// Why uv_poll and not a blocking read: an eventfd read blocks until the kernel
// signals it, so a read through Node's fs would pin one libuv threadpool thread
// per monitored container for the container's whole life (the pool has 4).
// uv_poll costs no thread: the loop's epoll wakes us, we drain the counter with
// non-blocking reads and call back into JS. Same pattern as the pidfd exit watch.
//
// No static mutable state: each watch owns its handle, fd and callback, and
// registers an env cleanup hook so a worker (or the process) tearing down its
// environment stops and frees it.
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <vector>

#include "common.h"

namespace nstar {

namespace {

struct EventfdWatch;

// What the JS handle's close() points at: outlives the watch, so a close()
// after the watch ended on its own finds `watch == nullptr` instead of freed
// memory. Freed by the handle object's finalizer.
struct WatchToken {
  EventfdWatch* watch;
};

// One eventfd watch. Deleted in the uv_close callback, never before.
struct EventfdWatch {
  uv_poll_t poll;
  WatchToken* token;
  napi_env env;
  int fd;
  bool closed;
  Napi::FunctionReference callback;
  Napi::ObjectReference resource;
  napi_async_context context;
};

void OnHandleClosed(uv_handle_t* handle) {
  auto* w = static_cast<EventfdWatch*>(handle->data);
  delete w;
}

void Shutdown(EventfdWatch* w, bool inCleanupHook);

void CleanupHook(void* arg) { Shutdown(static_cast<EventfdWatch*>(arg), true); }

// Stops polling, closes the fd, and frees the watch once libuv lets go of the
// handle. Idempotent: called by close(), by a poll error and by env cleanup.
void Shutdown(EventfdWatch* w, bool inCleanupHook) {
  if (w->closed) return;
  w->closed = true;
  uv_poll_stop(&w->poll);
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  if (w->token != nullptr) w->token->watch = nullptr;
  w->token = nullptr;
  if (!inCleanupHook) napi_remove_env_cleanup_hook(w->env, CleanupHook, w);
  w->callback.Reset();
  w->resource.Reset();
  napi_async_destroy(w->env, w->context);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnHandleClosed);
}

// Drains the counter: an eventfd read returns everything signalled since the
// last read and resets it; EAGAIN means nothing (more) is pending.
uint64_t Drain(int fd, int* err) {
  uint64_t total = 0;
  for (;;) {
    uint64_t v = 0;
    ssize_t n = read(fd, &v, sizeof v);
    if (n == sizeof v) {
      total += v;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    *err = (n < 0 && errno != EAGAIN) ? errno : 0;
    return total;
  }
}

void OnReadable(uv_poll_t* handle, int status, int events) {
  auto* w = static_cast<EventfdWatch*>(handle->data);
  if (w->closed) return;
  int err = status < 0 ? EIO : 0;
  uint64_t count = status < 0 ? 0 : Drain(w->fd, &err);
  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  if (err == 0 && count == 0) return;
  Napi::Value arg0 = err ? Napi::Value(ErrnoError(env, err, "read")) : env.Null();
  Napi::Value arg1 = Napi::Number::New(env, static_cast<double>(count));
  try {
    w->callback.MakeCallback(w->resource.Value(), {arg0, arg1}, w->context);
  } catch (const Napi::Error& e) {
    // Thrown by the JS callback: hand it to Node's uncaught-exception path
    // (there is no JS caller on this stack to receive it).
    napi_fatal_exception(w->env, e.Value());
  }
  // A read error ends the watch; JS heard it once, with the error. The watch
  // is freed in the uv_close callback, so `w` is still valid here even if the
  // callback called close().
  if (err) Shutdown(w, false);
}

// eventfd(): a non-blocking, close-on-exec eventfd with counter 0.
Napi::Value Eventfd(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) ThrowErrno(info.Env(), errno, "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value WatchClose(const Napi::CallbackInfo& info) {
  auto* token = static_cast<WatchToken*>(info.Data());
  if (token->watch != nullptr) Shutdown(token->watch, false);
  return info.Env().Undefined();
}

// eventfdWatch(fd, cb(err, count)): takes ownership of fd; cb runs on this
// thread's loop each time the eventfd counts. Returns {close()}.
Napi::Value WatchEventfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "eventfdWatch(fd: number, cb: (err, count) => void)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "eventfdWatch: no event loop on this thread");
  }
  auto* w = new EventfdWatch();
  w->env = env;
  w->token = nullptr;
  w->fd = fd;
  w->closed = false;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc != 0) {
    delete w;
    ThrowErrno(env, -rc, "uv_poll_init");
  }
  w->poll.data = w;
  Napi::Object handle = Napi::Object::New(env);
  w->callback = Napi::Persistent(info[1].As<Napi::Function>());
  w->resource = Napi::Persistent(handle);
  napi_async_init(env, handle, Napi::String::New(env, "nstar:eventfd"), &w->context);
  rc = uv_poll_start(&w->poll, UV_READABLE, OnReadable);
  if (rc != 0) {
    w->fd = -1;  // the caller still owns fd when we fail
    Shutdown(w, false);
    ThrowErrno(env, -rc, "uv_poll_start");
  }
  napi_add_env_cleanup_hook(env, CleanupHook, w);
  w->token = new WatchToken{w};
  handle.AddFinalizer([](Napi::Env, WatchToken* t) { delete t; }, w->token);
  handle.Set("close", Napi::Function::New(env, WatchClose, "close", w->token));
  return handle;
}


// ---------------------------------------------------------------- batches
//
// A start makes a directory in every hierarchy (~8 on a v1 host), writes the
// init pid into each cgroup.procs, and removes them again at the exit. Through
// Node's sync fs every mkdir and every open/write/close pair is a separate
// libuv call with its own JS overhead (~10 µs each, as much as the kernel's
// own work for a pid write); these do a whole batch in one call. Results are
// one errno per path (0: done), in order.

std::vector<std::string> Paths(const Napi::Value& v) {
  std::vector<std::string> out;
  Napi::Array a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

Napi::Array Errnos(Napi::Env env, const std::vector<int>& errs) {
  Napi::Array r = Napi::Array::New(env, errs.size());
  for (size_t i = 0; i < errs.size(); i++) r.Set(static_cast<uint32_t>(i), errs[i]);
  return r;
}

int MkdirOne(const std::string& p) { return mkdir(p.c_str(), 0755) == 0 ? 0 : errno; }

// mkdirs(paths, cb(errnos)): every mkdir, in order, in the libuv threadpool (one job).
class MkdirsWorker : public Napi::AsyncWorker {
 public:
  MkdirsWorker(Napi::Function cb, std::vector<std::string> paths)
      : Napi::AsyncWorker(cb, "nstar.cgroupMkdirs"), paths_(std::move(paths)) {}
  void Execute() override {
    for (const auto& p : paths_) errs_.push_back(MkdirOne(p));
  }
  void OnOK() override { Callback().Call({Errnos(Env(), errs_)}); }

 private:
  std::vector<std::string> paths_;
  std::vector<int> errs_;
};

Napi::Value Mkdirs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "cgroupMkdirs(paths, callback)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  (new MkdirsWorker(info[1].As<Napi::Function>(), Paths(info[0])))->Queue();
  return env.Undefined();
}

// writeAll(paths, data): open(O_WRONLY) + one write(2) + close of each, in
// order; stops at the first failure (the rest report ECANCELED).
Napi::Value WriteAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsString()) {
    Napi::TypeError::New(env, "cgroupWriteAll(paths, data)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<std::string> paths = Paths(info[0]);
  std::string data = info[1].As<Napi::String>().Utf8Value();
  std::vector<int> errs(paths.size(), ECANCELED);
  for (size_t i = 0; i < paths.size(); i++) {
    int fd = open(paths[i].c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      // As cgroup-files.ts reports it: a missing file is an `open` error, the rest `write`.
      errs[i] = -errno;
      break;
    }
    ssize_t n = write(fd, data.data(), data.size());
    int e = n < 0 ? errno : (static_cast<size_t>(n) != data.size() ? EIO : 0);
    close(fd);
    errs[i] = e;
    if (e != 0) break;
  }
  return Errnos(env, errs);
}

// rmdirs(paths): every rmdir, in order (each result on its own).
Napi::Value Rmdirs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "cgroupRmdirs(paths)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<std::string> paths = Paths(info[0]);
  std::vector<int> errs;
  for (const auto& p : paths) errs.push_back(rmdir(p.c_str()) == 0 ? 0 : errno);
  return Errnos(env, errs);
}

}  // namespace

void RegisterCgroup(Napi::Env env, Napi::Object exports) {
  exports.Set("cgroupMkdirs", Napi::Function::New(env, Mkdirs, "cgroupMkdirs"));
  exports.Set("cgroupWriteAll", Napi::Function::New(env, WriteAll, "cgroupWriteAll"));
  exports.Set("cgroupRmdirs", Napi::Function::New(env, Rmdirs, "cgroupRmdirs"));
  exports.Set("eventfd", Napi::Function::New(env, Eventfd, "eventfd"));
  exports.Set("eventfdWatch", Napi::Function::New(env, WatchEventfd, "eventfdWatch"));
}

}  // namespace nstar
