// FdWatch: one uv_poll over an fd the watch owns, calling back into JS. The
// one watch scheme of the addon: the pidfd exit watch (spawn.cc), message
// sockets (messages.cc) and the cgroup v1 OOM eventfd (cgroup.cc) derive
// from it and only say what a readable fd means.
//
// Threads: runs on the thread that started it, on that thread's libuv loop
// (the main thread in the runtime; the addon is context-aware and also loads
// in worker threads, where each watch belongs to its worker's loop and env).
//
// Lifetime, in one place:
// - The watch is shared (shared_ptr) by the uv_poll handle, from Start until
//   libuv's close callback, and by the JS functions of its handle object
//   (close(), signal(), ...), until they are collected.
// - Stop() (idempotent) is the only way out: it stops polling, closes the fd
//   and releases the JS callback, its async context and the handle object at
//   once, never from the close callback: that one may run after a worker's
//   isolate is gone (its loop is drained then), so it only drops memory.
// - An env cleanup hook, registered while polling, stops a watch its
//   environment (a worker, the process) tears down.
// - Callbacks run through napi_make_callback in an async context made at
//   Start, whose trigger is the JS code that started the watch: async_hooks
//   and AsyncLocalStorage see each callback as caused by that code.
#pragma once
#include <napi.h>
#include <uv.h>

#include <initializer_list>
#include <memory>
#include <optional>

namespace nstar {

class FdWatch : public std::enable_shared_from_this<FdWatch> {
 public:
  FdWatch() = default;
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;
  virtual ~FdWatch() = default;

  // Polls `fd` for readability and owns it from then on. `callback` runs with
  // the returned object as `this` and async resource (named `name`); the
  // caller adds its methods to that object. Throws when libuv refuses the
  // fd, which then still belongs to the caller.
  Napi::Object Start(Napi::Env env, int fd, Napi::Function callback, const char* name);

  // No more callbacks, the fd closed, the JS callback released. Idempotent;
  // safe inside the watch's own callback.
  void Stop();

  int fd() const { return fd_; }
  bool active() const { return polling_; }

 protected:
  // The fd is readable (status < 0: libuv reports a poll error). Called only
  // while active, inside a handle scope.
  virtual void OnReadable(int status) = 0;
  // Calls the JS callback. What it throws goes to Node's uncaught-exception
  // path: there is no JS caller on this stack to receive it.
  void Call(std::initializer_list<napi_value> args);
  // Stop(), then call the JS callback one last time (the end of the watch).
  void Finish(std::initializer_list<napi_value> args);
  Napi::Env Env() const { return Napi::Env(env_); }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnClosed(uv_handle_t* handle);
  static void OnEnvCleanup(void* arg);
  void Halt(bool inCleanupHook);
  void Release();

  napi_env env_ = nullptr;
  uv_poll_t poll_{};
  int fd_ = -1;
  bool polling_ = false;
  int calls_ = 0;  // Calls on the stack: the JS references are released after them
  std::shared_ptr<FdWatch> self_;  // the poll handle's reference, until uv_close completes
  Napi::FunctionReference callback_;
  Napi::ObjectReference resource_;
  std::optional<Napi::AsyncContext> context_;
};

// A JS close() that stops `w`; it keeps `w` alive until it is collected.
Napi::Function CloseFunction(Napi::Env env, const std::shared_ptr<FdWatch>& w);

}  // namespace nstar
