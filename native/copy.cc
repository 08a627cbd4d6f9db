// copy module: the *at primitives copy_in/copy_out need to stay inside a
// container's root (spec/streams.md "Copy in / out"). Every path is resolved
// by the kernel relative to a directory fd with openat2's RESOLVE_* flags,
// never as a host path; every write goes through the resulting fds. Node has
// none of these calls. Any thread (the copy worker); no static mutable state.
// Every fd returned is O_CLOEXEC and owned by the caller.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common.h"

namespace nstar {
namespace {

int Int(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
std::string Str(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::String>().Utf8Value(); }

// openat2(dirfd, path, flags, mode, resolve) -> fd (O_CLOEXEC added).
Napi::Value Openat2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = Int(info, 0);
  std::string path = Str(info, 1);
  open_how how{};
  how.flags = (uint64_t)(uint32_t)Int(info, 2) | O_CLOEXEC;
  how.mode = (how.flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)Int(info, 3) : 0;
  how.resolve = (uint64_t)(uint32_t)Int(info, 4);
  int fd;
  do fd = (int)syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(env, errno, "openat2", path);
  return Napi::Number::New(env, fd);
}

// mkdirat(dirfd, name, mode)
Napi::Value Mkdirat(const Napi::CallbackInfo& info) {
  std::string name = Str(info, 1);
  if (mkdirat(Int(info, 0), name.c_str(), (mode_t)Int(info, 2)) != 0) ThrowErrno(info.Env(), errno, "mkdirat", name);
  return info.Env().Undefined();
}

// renameat(olddirfd, old, newdirfd, new)
Napi::Value Renameat(const Napi::CallbackInfo& info) {
  std::string from = Str(info, 1), to = Str(info, 3);
  if (renameat(Int(info, 0), from.c_str(), Int(info, 2), to.c_str()) != 0) ThrowErrno(info.Env(), errno, "renameat", to);
  return info.Env().Undefined();
}

// unlinkat(dirfd, name, flags)
Napi::Value Unlinkat(const Napi::CallbackInfo& info) {
  std::string name = Str(info, 1);
  if (unlinkat(Int(info, 0), name.c_str(), Int(info, 2)) != 0) ThrowErrno(info.Env(), errno, "unlinkat", name);
  return info.Env().Undefined();
}

// symlinkat(target, dirfd, name)
Napi::Value Symlinkat(const Napi::CallbackInfo& info) {
  std::string target = Str(info, 0), name = Str(info, 2);
  if (symlinkat(target.c_str(), Int(info, 1), name.c_str()) != 0) ThrowErrno(info.Env(), errno, "symlinkat", name);
  return info.Env().Undefined();
}

// linkat(olddirfd, old, newdirfd, new, flags): with AT_EMPTY_PATH and old "" links the file of an O_PATH fd.
Napi::Value Linkat(const Napi::CallbackInfo& info) {
  std::string from = Str(info, 1), to = Str(info, 3);
  if (linkat(Int(info, 0), from.c_str(), Int(info, 2), to.c_str(), Int(info, 4)) != 0) ThrowErrno(info.Env(), errno, "linkat", to);
  return info.Env().Undefined();
}

// fchownat(dirfd, name, uid, gid, flags): for symlinks (AT_SYMLINK_NOFOLLOW), which have no fd to fchown.
Napi::Value Fchownat(const Napi::CallbackInfo& info) {
  std::string name = Str(info, 1);
  if (fchownat(Int(info, 0), name.c_str(), (uid_t)Int(info, 2), (gid_t)Int(info, 3), Int(info, 4)) != 0)
    ThrowErrno(info.Env(), errno, "fchownat", name);
  return info.Env().Undefined();
}

// readlinkat(dirfd, name) -> string
Napi::Value Readlinkat(const Napi::CallbackInfo& info) {
  std::string name = Str(info, 1);
  char buf[4096];
  ssize_t n = readlinkat(Int(info, 0), name.c_str(), buf, sizeof buf);
  if (n < 0) ThrowErrno(info.Env(), errno, "readlinkat", name);
  return Napi::String::New(info.Env(), buf, (size_t)n);
}

// fstatat(dirfd, name, flags) -> {mode, uid, gid, size, mtimeMs, ino, dev, nlink}
Napi::Value Fstatat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = Str(info, 1);
  struct stat st;
  if (fstatat(Int(info, 0), name.c_str(), &st, Int(info, 2)) != 0) ThrowErrno(env, errno, "fstatat", name);
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", (double)st.st_mode);
  o.Set("uid", (double)st.st_uid);
  o.Set("gid", (double)st.st_gid);
  o.Set("size", (double)st.st_size);
  o.Set("mtimeMs", (double)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1e6);
  o.Set("ino", (double)st.st_ino);
  o.Set("dev", (double)st.st_dev);
  o.Set("nlink", (double)st.st_nlink);
  return o;
}

// readdirFd(fd) -> names (without . and ..); `fd` stays open and unmoved (a dup is read).
Napi::Value ReaddirFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = openat(Int(info, 0), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "openat", ".");
  DIR* d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "fdopendir");
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  errno = 0;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    out.Set(i++, Napi::String::New(env, e->d_name));
  }
  int err = errno;
  closedir(d);
  if (err != 0) ThrowErrno(env, err, "readdir");
  return out;
}

// mountReadOnly(fd) -> whether the mount holding fd is read-only (fstatvfs ST_RDONLY).
Napi::Value MountReadOnly(const Napi::CallbackInfo& info) {
  struct statvfs s;
  if (fstatvfs(Int(info, 0), &s) != 0) ThrowErrno(info.Env(), errno, "fstatvfs");
  return Napi::Boolean::New(info.Env(), (s.f_flag & ST_RDONLY) != 0);
}

}  // namespace

void RegisterCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("openat2", Napi::Function::New(env, Openat2, "openat2"));
  exports.Set("mkdirat", Napi::Function::New(env, Mkdirat, "mkdirat"));
  exports.Set("renameat", Napi::Function::New(env, Renameat, "renameat"));
  exports.Set("unlinkat", Napi::Function::New(env, Unlinkat, "unlinkat"));
  exports.Set("symlinkat", Napi::Function::New(env, Symlinkat, "symlinkat"));
  exports.Set("linkat", Napi::Function::New(env, Linkat, "linkat"));
  exports.Set("fchownat", Napi::Function::New(env, Fchownat, "fchownat"));
  exports.Set("readlinkat", Napi::Function::New(env, Readlinkat, "readlinkat"));
  exports.Set("fstatat", Napi::Function::New(env, Fstatat, "fstatat"));
  exports.Set("readdirFd", Napi::Function::New(env, ReaddirFd, "readdirFd"));
  exports.Set("mountReadOnly", Napi::Function::New(env, MountReadOnly, "mountReadOnly"));
}

}  // namespace nstar
