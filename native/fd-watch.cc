// FdWatch (fd-watch.h): the uv_poll watch every fd watcher of the addon
// derives from. Runs on the thread that started the watch, on its loop.
#include "fd-watch.h"

#include <unistd.h>

#include <string>

#include "common.h"

namespace nstar {

Napi::Object FdWatch::Start(Napi::Env env, int fd, Napi::Function callback, const char* name) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
    throw Napi::Error::New(env, std::string(name) + ": no event loop on this thread");
  int rc = uv_poll_init(loop, &poll_, fd);
  if (rc != 0) ThrowErrno(env, -rc, "uv_poll_init");
  env_ = env;
  poll_.data = this;
  self_ = shared_from_this();
  rc = uv_poll_start(&poll_, UV_READABLE, OnPoll);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnClosed);  // fd_ is unset: the fd stays the caller's
    ThrowErrno(env, -rc, "uv_poll_start");
  }
  fd_ = fd;
  polling_ = true;
  Napi::Object handle = Napi::Object::New(env);
  callback_ = Napi::Persistent(callback);
  // Held strongly: Node holds an async resource passed in only weakly, and
  // AsyncLocalStorage keeps its store on it.
  resource_ = Napi::Persistent(handle);
  context_.emplace(env, name, handle);
  napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  return handle;
}

void FdWatch::Stop() {
  Halt(false);
  Release();
}

void FdWatch::Finish(std::initializer_list<napi_value> args) {
  Halt(false);
  Call(args);  // releases the JS references when it returns: the watch is halted
}

void FdWatch::Call(std::initializer_list<napi_value> args) {
  if (callback_.IsEmpty()) return;
  calls_++;
  try {
    callback_.MakeCallback(resource_.Value(), args, *context_);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env_, e.Value());
  }
  calls_--;
  if (!polling_) Release();
}

// Stops polling and closes the fd; the JS references stay (see Release).
void FdWatch::Halt(bool inCleanupHook) {
  if (!polling_) return;
  polling_ = false;
  // A hook being run is removed by Node itself.
  if (!inCleanupHook) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  uv_poll_stop(&poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnClosed);
  close(fd_);
  fd_ = -1;
}

// Drops the callback, its async context and the handle object. Deferred
// while a Call is on the stack (a callback that calls close()): the async
// context must outlive the napi_make_callback that runs in it.
void FdWatch::Release() {
  if (calls_ > 0) return;
  callback_.Reset();
  resource_.Reset();
  context_.reset();
}

void FdWatch::OnPoll(uv_poll_t* handle, int status, int events) {
  // Alive: self_ holds the watch until OnClosed, which runs on a later turn.
  auto* w = static_cast<FdWatch*>(handle->data);
  if (!w->polling_) return;
  Napi::HandleScope scope(w->Env());
  w->OnReadable(status);
}

// May run after a worker's isolate is gone: memory only, no JS.
void FdWatch::OnClosed(uv_handle_t* handle) {
  std::shared_ptr<FdWatch> last = std::move(static_cast<FdWatch*>(handle->data)->self_);
}

// The environment is going away (worker exit, process exit): JS can no
// longer be called, so the watch ends without a last callback.
void FdWatch::OnEnvCleanup(void* arg) {
  auto* w = static_cast<FdWatch*>(arg);
  w->Halt(true);
  w->Release();
}

Napi::Function CloseFunction(Napi::Env env, const std::shared_ptr<FdWatch>& w) {
  return Napi::Function::New(
      env,
      [w](const Napi::CallbackInfo& info) -> Napi::Value {
        w->Stop();
        return info.Env().Undefined();
      },
      "close");
}

}  // namespace nstar
