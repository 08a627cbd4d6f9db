// loop module of the nstar addon: loop device attach/detach/info and
// mount/umount2. Runs in Piscina mount workers (and on the main thread for
// crash recovery). Every call is synchronous and blocking: call it from a
// worker, never from the main loop on a hot path.
//
// Attach: LOOP_CTL_GET_FREE + LOOP_CONFIGURE (one ioctl, no global lock).
// GET_FREE does not reserve the device, so a racing attacher makes ours fail
// with EBUSY: we retry at once (no sleep) until the timeout. Kernels < 5.8
// lack LOOP_CONFIGURE (EINVAL/ENOTTY): we fall back to LOOP_SET_FD +
// LOOP_SET_STATUS64.
//
// Loop-device fds opened here belong to the whole process and survive the
// worker that opened them, so each environment tracks the fds it handed out
// and an env cleanup hook closes what the task did not release (a terminated
// worker). With LO_FLAGS_AUTOCLEAR the last close of an unmounted device
// detaches it.
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include "common.h"

// Older kernel headers (< 5.8) lack LOOP_CONFIGURE and struct loop_config.
#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
  __u32 fd;
  __u32 block_size;
  struct loop_info64 info;
  __u64 __reserved[8];
};
#endif

namespace nstar {
namespace {

// Per-environment state (one per thread that loaded the addon).
struct LoopEnv {
  std::set<int> fds;  // loop-device fds handed to JS and not yet released
};

double NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Napi::Object Ok(Napi::Env env, Napi::Value value) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("ok", true);
  r.Set("value", value);
  return r;
}

struct AttachRequest {
  std::string path;
  uint64_t offset = 0;
  uint64_t size_limit = 0;
  double timeout_ms = 10000;
  bool classic = false;     // force LOOP_SET_FD + LOOP_SET_STATUS64
  bool always_add = false;  // test/bench: skip GET_FREE, create with LOOP_CTL_ADD
  int device = -1;          // attach this /dev/loop<n> only (losetup style)
  bool no_follow = false;   // repository files: never through a symlink
};

struct AttachState {
  int backing = -1;
  int ctl = -1;
  int loop = -1;
  int number = -1;
  int busy_retries = 0;
  int added = 0;
  bool classic = false;
  // On failure: what failed.
  int err = 0;
  const char* syscall = "";
  std::string path;
};

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

bool SetErr(AttachState& s, int err, const char* syscall, const std::string& path) {
  s.err = err;
  s.syscall = syscall;
  s.path = path;
  return false;
}

// LOOP_CTL_ADD the first n whose /sys/block/loop<n> does not exist (spec:
// launch.md §5.3). EEXIST means someone else added it first: try the next.
int AddDevice(AttachState& s) {
  for (int n = 0; n < (1 << 20); n++) {
    std::string sys = "/sys/block/loop" + std::to_string(n);
    if (access(sys.c_str(), F_OK) == 0) continue;
    int r = ioctl(s.ctl, LOOP_CTL_ADD, n);
    if (r >= 0) {
      s.added++;
      return r;
    }
    if (errno == EEXIST) continue;
    SetErr(s, errno, "ioctl(LOOP_CTL_ADD)", "/dev/loop-control");
    return -1;
  }
  SetErr(s, ENOSPC, "ioctl(LOOP_CTL_ADD)", "/dev/loop-control");
  return -1;
}

int FreeDevice(AttachState& s, const AttachRequest& req) {
  if (req.device >= 0) return req.device;
  if (req.always_add) return AddDevice(s);
  int n = ioctl(s.ctl, LOOP_CTL_GET_FREE);
  if (n >= 0) return n;
  // Fixed pools (max_loop, Android) run out: create one (Northstar #874).
  if (errno == ENOENT || errno == ENODEV || errno == ENOSPC) return AddDevice(s);
  SetErr(s, errno, "ioctl(LOOP_CTL_GET_FREE)", "/dev/loop-control");
  return -1;
}

struct loop_info64 Info(const AttachRequest& req) {
  struct loop_info64 info;
  memset(&info, 0, sizeof info);
  info.lo_offset = req.offset;
  info.lo_sizelimit = req.size_limit;
  info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
  strncpy(reinterpret_cast<char*>(info.lo_file_name), req.path.c_str(), LO_NAME_SIZE - 1);
  return info;
}

// One attach attempt on s.loop. Returns 0, or the errno of the failed step
// with s.syscall set. Only a device this attempt attached is ever cleared.
int Configure(AttachState& s, const AttachRequest& req) {
  if (!s.classic) {
    struct loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = s.backing;
    cfg.info = Info(req);
    if (ioctl(s.loop, LOOP_CONFIGURE, &cfg) == 0) return 0;
    s.syscall = "ioctl(LOOP_CONFIGURE)";
    if (errno != EINVAL && errno != ENOTTY) return errno;
    s.classic = true;  // kernel < 5.8
  }
  if (ioctl(s.loop, LOOP_SET_FD, s.backing) != 0) {
    s.syscall = "ioctl(LOOP_SET_FD)";
    return errno;
  }
  struct loop_info64 info = Info(req);
  int err;
  do {
    if (ioctl(s.loop, LOOP_SET_STATUS64, &info) == 0) return 0;
    err = errno;
  } while (err == EAGAIN);  // page cache still being flushed (kernels < 5.x)
  ioctl(s.loop, LOOP_CLR_FD, 0);  // attached by this attempt: undo it
  s.syscall = "ioctl(LOOP_SET_STATUS64)";
  return err;
}

// Loops over free devices until one attaches, or a hard error / the timeout.
bool Attach(AttachState& s, const AttachRequest& req) {
  double deadline = NowMs() + req.timeout_ms;
  s.classic = req.classic;
  for (;;) {
    s.number = FreeDevice(s, req);
    if (s.number < 0) return false;
    std::string dev = "/dev/loop" + std::to_string(s.number);
    s.loop = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
    int err = s.loop < 0 ? errno : Configure(s, req);
    if (s.loop < 0) s.syscall = "open";
    if (err == 0) return true;
    CloseFd(s.loop);
    // EBUSY: another attacher took the device between GET_FREE and our
    // ioctl. ENOENT/ENXIO: the device node vanished or is being removed.
    bool transient = err == EBUSY || err == EAGAIN || err == ENOENT || err == ENXIO;
    if (!transient) return SetErr(s, err, s.syscall, dev);
    s.busy_retries++;
    if (NowMs() >= deadline) return SetErr(s, err, s.syscall, dev);
  }
}

AttachRequest ParseRequest(const Napi::Object& o) {
  AttachRequest req;
  req.path = o.Get("path").As<Napi::String>().Utf8Value();
  if (o.Has("offset")) req.offset = static_cast<uint64_t>(o.Get("offset").As<Napi::Number>().Int64Value());
  if (o.Has("sizeLimit")) req.size_limit = static_cast<uint64_t>(o.Get("sizeLimit").As<Napi::Number>().Int64Value());
  if (o.Has("timeoutMs")) req.timeout_ms = o.Get("timeoutMs").As<Napi::Number>().DoubleValue();
  if (o.Has("method")) req.classic = o.Get("method").As<Napi::String>().Utf8Value() == "classic";
  if (o.Has("allocate")) req.always_add = o.Get("allocate").As<Napi::String>().Utf8Value() == "add";
  if (o.Has("device")) req.device = o.Get("device").As<Napi::Number>().Int32Value();
  if (o.Has("noFollow")) req.no_follow = o.Get("noFollow").ToBoolean().Value();
  return req;
}

// loopAttach({path, offset, sizeLimit, timeoutMs, method?, allocate?, device?, noFollow?})
//   → {ok, value:{device, number, fd, method, busyRetries, added, phases:{open, attach}}}
Napi::Value LoopAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* le = static_cast<LoopEnv*>(info.Data());
  if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().Get("path").IsString())
    throw Napi::TypeError::New(env, "loopAttach: expected {path, offset, sizeLimit, timeoutMs}");
  AttachRequest req = ParseRequest(info[0].As<Napi::Object>());
  AttachState s;
  double t0 = NowMs();
  s.backing = open(req.path.c_str(), O_RDONLY | O_CLOEXEC | (req.no_follow ? O_NOFOLLOW : 0));
  if (s.backing < 0) return Fail(env, errno, "open", req.path);
  double t1 = NowMs();
  s.ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  bool ok = s.ctl >= 0 ? Attach(s, req) : SetErr(s, errno, "open", "/dev/loop-control");
  CloseFd(s.backing);  // the loop device holds its own reference to the file
  CloseFd(s.ctl);
  if (!ok) return Fail(env, s.err, s.syscall, s.path);
  double t2 = NowMs();
  le->fds.insert(s.loop);
  Napi::Object phases = Napi::Object::New(env);
  phases.Set("open", t1 - t0);
  phases.Set("attach", t2 - t1);
  Napi::Object v = Napi::Object::New(env);
  v.Set("device", "/dev/loop" + std::to_string(s.number));
  v.Set("number", s.number);
  v.Set("fd", s.loop);
  v.Set("method", s.classic ? "classic" : "configure");
  v.Set("busyRetries", s.busy_retries);
  v.Set("added", s.added);
  v.Set("phases", phases);
  return Ok(env, v);
}

// loopRelease(fd, {detach?}): closes a loop-device fd handed out by
// loopAttach. Once the device is mounted the mount holds it; unmounted,
// AUTOCLEAR detaches it on this last close. With `detach`, LOOP_CLR_FD first:
// as the only opener we get a synchronous detach (unwinding a failed mount).
Napi::Value LoopRelease(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* le = static_cast<LoopEnv*>(info.Data());
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "loopRelease: expected (fd, {detach?})");
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool detach = false;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value d = info[1].As<Napi::Object>().Get("detach");
    detach = d.IsBoolean() && d.As<Napi::Boolean>().Value();
  }
  if (le->fds.erase(fd) == 0) return Fail(env, EBADF, "close", "loop fd " + std::to_string(fd));
  int clr_err = 0;
  if (detach && ioctl(fd, LOOP_CLR_FD, 0) != 0 && errno != ENXIO) clr_err = errno;
  close(fd);  // Linux always releases the fd, even on EINTR
  if (clr_err != 0) return Fail(env, clr_err, "ioctl(LOOP_CLR_FD)", "loop fd " + std::to_string(fd));
  return Ok(env, env.Undefined());
}

// loopOpenFds(): the loop fds this thread still holds (leak checks).
Napi::Value LoopOpenFds(const Napi::CallbackInfo& info) {
  auto* le = static_cast<LoopEnv*>(info.Data());
  Napi::Array a = Napi::Array::New(info.Env(), le->fds.size());
  uint32_t i = 0;
  for (int fd : le->fds) a.Set(i++, fd);
  return a;
}

// loopDetach('/dev/loopN'): LOOP_CLR_FD. On a device still open elsewhere
// the kernel turns this into autoclear on last close.
Napi::Value LoopDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dev = info[0].As<Napi::String>().Utf8Value();
  int fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(env, errno, "open", dev);
  int r = ioctl(fd, LOOP_CLR_FD, 0);
  int err = errno;
  close(fd);
  if (r != 0) return Fail(env, err, "ioctl(LOOP_CLR_FD)", dev);
  return Ok(env, env.Undefined());
}

// loopInfo('/dev/loopN') → {device, number, offset, sizeLimit, flags, readOnly, autoclear, fileName}
Napi::Value LoopInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dev = info[0].As<Napi::String>().Utf8Value();
  int fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(env, errno, "open", dev);
  struct loop_info64 li;
  memset(&li, 0, sizeof li);
  int r = ioctl(fd, LOOP_GET_STATUS64, &li);
  int err = errno;
  close(fd);
  if (r != 0) return Fail(env, err, "ioctl(LOOP_GET_STATUS64)", dev);
  Napi::Object v = Napi::Object::New(env);
  v.Set("device", dev);
  v.Set("number", static_cast<double>(li.lo_number));
  v.Set("offset", static_cast<double>(li.lo_offset));
  v.Set("sizeLimit", static_cast<double>(li.lo_sizelimit));
  v.Set("flags", static_cast<double>(li.lo_flags));
  v.Set("readOnly", (li.lo_flags & LO_FLAGS_READ_ONLY) != 0);
  v.Set("autoclear", (li.lo_flags & LO_FLAGS_AUTOCLEAR) != 0);
  v.Set("fileName", std::string(reinterpret_cast<char*>(li.lo_file_name),
                                strnlen(reinterpret_cast<char*>(li.lo_file_name), LO_NAME_SIZE)));
  return Ok(env, v);
}

// mount(source, target, fstype, flags, data|null) → Result<void>
Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[1].IsString() || !info[3].IsNumber())
    throw Napi::TypeError::New(env, "mount: expected (source, target, fstype, flags, data?)");
  std::string source = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  std::string target = info[1].As<Napi::String>().Utf8Value();
  std::string fstype = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  unsigned long flags = static_cast<unsigned long>(info[3].As<Napi::Number>().Int64Value());
  bool has_data = info.Length() > 4 && info[4].IsString();
  std::string data = has_data ? info[4].As<Napi::String>().Utf8Value() : "";
  int r = ::mount(info[0].IsString() ? source.c_str() : nullptr, target.c_str(),
                  info[2].IsString() ? fstype.c_str() : nullptr, flags, has_data ? data.c_str() : nullptr);
  if (r != 0) return Fail(env, errno, "mount", target);
  return Ok(env, env.Undefined());
}

// umount(target, {detach?}) → Result<void>: umount2 with MNT_DETACH when asked.
Napi::Value Umount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "umount: expected (target, {detach?})");
  std::string target = info[0].As<Napi::String>().Utf8Value();
  int flags = UMOUNT_NOFOLLOW;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value d = info[1].As<Napi::Object>().Get("detach");
    if (d.IsBoolean() && d.As<Napi::Boolean>().Value()) flags |= MNT_DETACH;
  }
  if (umount2(target.c_str(), flags) != 0) return Fail(env, errno, "umount2", target);
  return Ok(env, env.Undefined());
}

// Runs when the environment (a worker thread) goes away: closes the loop fds
// its tasks never released, so AUTOCLEAR detaches unmounted devices.
void CloseLeftovers(void* arg) {
  auto* le = static_cast<LoopEnv*>(arg);
  for (int fd : le->fds) close(fd);
  delete le;
}

}  // namespace

void RegisterLoop(Napi::Env env, Napi::Object exports) {
  auto* le = new LoopEnv();
  napi_add_env_cleanup_hook(env, CloseLeftovers, le);
  auto def = [&](const char* name, Napi::Function::Callback cb) {
    exports.Set(name, Napi::Function::New(env, cb, name, le));
  };
  def("loopAttach", LoopAttach);
  def("loopRelease", LoopRelease);
  def("loopOpenFds", LoopOpenFds);
  def("loopDetach", LoopDetach);
  def("loopInfo", LoopInfo);
  def("mount", Mount);
  def("umount", Umount);
}

}  // namespace nstar
