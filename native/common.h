// Shared helpers for every native module: errors as data, fd ownership.
// Runs on any thread that loaded the addon (main thread and pool workers);
// holds no static mutable state.
#pragma once
#include <napi.h>
#include <string>

namespace nstar {

// {code:'EBUSY', errno:16, syscall:'mount', path:'/run/x', message:"mount `/run/x`: Device or resource busy"}
Napi::Object ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path = "");

// {ok:false, error:ErrnoError(...)}: how failures cross threads (Piscina drops
// custom properties of thrown errors).
Napi::Object Fail(Napi::Env env, int err, const char* syscall, const std::string& path = "");

// Throws a JS Error carrying code/errno/syscall/path.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path = "");

// The symbolic name of an errno value ("EBUSY"), "E<n>" when unknown.
std::string ErrnoName(int err);

// Per-module registration: each adds its functions to `exports`.
void RegisterLoop(Napi::Env env, Napi::Object exports);
void RegisterDm(Napi::Env env, Napi::Object exports);
void RegisterSpawn(Napi::Env env, Napi::Object exports);
void RegisterMessages(Napi::Env env, Napi::Object exports);
void RegisterNetns(Napi::Env env, Napi::Object exports);
void RegisterFd(Napi::Env env, Napi::Object exports);
void RegisterCgroup(Napi::Env env, Napi::Object exports);
void RegisterCopy(Napi::Env env, Napi::Object exports);
void RegisterNetif(Napi::Env env, Napi::Object exports);
void RegisterPty(Napi::Env env, Napi::Object exports);

}  // namespace nstar
