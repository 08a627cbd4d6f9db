// Errors as data for every native module. Any thread.
#include "common.h"

#include <cstring>
#include <string.h>

namespace nstar {

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  if (name != nullptr) return name;
  return "E" + std::to_string(err);
}

Napi::Object ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  Napi::Object e = Napi::Object::New(env);
  std::string msg = syscall;
  if (!path.empty()) msg += " `" + path + "`";
  msg += ": ";
  msg += strerror(err);
  e.Set("code", ErrnoName(err));
  e.Set("errno", err);
  e.Set("syscall", syscall);
  if (!path.empty()) e.Set("path", path);
  e.Set("message", msg);
  return e;
}

Napi::Object Fail(Napi::Env env, int err, const char* syscall, const std::string& path) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("ok", false);
  r.Set("error", ErrnoError(env, err, syscall, path));
  return r;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path) {
  Napi::Object data = ErrnoError(env, err, syscall, path);
  Napi::Error e = Napi::Error::New(env, data.Get("message").As<Napi::String>().Utf8Value());
  e.Set("code", data.Get("code"));
  e.Set("errno", data.Get("errno"));
  e.Set("syscall", data.Get("syscall"));
  if (!path.empty()) e.Set("path", data.Get("path"));
  throw e;
}

}  // namespace nstar
