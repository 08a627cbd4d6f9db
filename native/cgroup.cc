// cgroup module of the nstar addon: what Node lacks for cgroup v1 OOM
// notification — an eventfd, and a watch that polls it with uv_poll on the
// calling thread's event loop (the main thread in the runtime).
//
// Why uv_poll and not a blocking read: an eventfd read blocks until the kernel
// signals it, so a read through Node's fs would pin one libuv threadpool thread
// per monitored container for the container's whole life (the pool has 4).
// uv_poll costs no thread: the loop's epoll wakes us, we drain the counter with
// non-blocking reads and call back into JS. The watch is an FdWatch
// (fd-watch.h), like the pidfd exit watch: its lifetime and env teardown are
// handled there. The batches below run on the calling thread, except
// cgroupMkdirs, whose mkdirs run in the libuv threadpool. No static mutable
// state.
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "fd-watch.h"

namespace nstar {

namespace {

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

// An eventfd counting cgroup v1 OOM events. A read error ends the watch:
// JS hears it once, with the error.
class EventfdWatch : public FdWatch {
 protected:
  void OnReadable(int status) override {
    int err = status < 0 ? EIO : 0;
    uint64_t count = status < 0 ? 0 : Drain(fd(), &err);
    if (err == 0 && count == 0) return;
    Napi::Env env = Env();
    Napi::Value arg0 = err ? Napi::Value(ErrnoError(env, err, "read")) : env.Null();
    Napi::Value arg1 = Napi::Number::New(env, static_cast<double>(count));
    if (err) return Finish({arg0, arg1});
    Call({arg0, arg1});
  }
};

// eventfd(): a non-blocking, close-on-exec eventfd with counter 0.
Napi::Value Eventfd(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) ThrowErrno(info.Env(), errno, "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

// eventfdWatch(fd, cb(err, count)): takes ownership of fd; cb runs on this
// thread's loop each time the eventfd counts. Returns {close()}.
Napi::Value WatchEventfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "eventfdWatch(fd: number, cb: (err, count) => void)");
  }
  auto w = std::make_shared<EventfdWatch>();
  Napi::Object handle = w->Start(env, info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Function>(), "nstar.eventfdWatch");
  handle.Set("close", CloseFunction(env, w));
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
