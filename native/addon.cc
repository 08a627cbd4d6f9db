// The nstar addon entry: a context-aware Napi::Addon, loaded on the main
// thread and in every pool worker. Each module registers its own functions;
// per-environment state lives in the module's instance data, never in statics.
#include <napi.h>

#include "common.h"

namespace nstar {

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {InstanceMethod("abiVersion", &Addon::AbiVersion)});
    RegisterLoop(env, exports);
    RegisterDm(env, exports);
    RegisterSpawn(env, exports);
    RegisterMessages(env, exports);
    RegisterNetns(env, exports);
    RegisterFd(env, exports);
    RegisterCgroup(env, exports);
    RegisterCopy(env, exports);
    RegisterNetif(env, exports);
    RegisterPty(env, exports);
  }

 private:
  // Bumped whenever the JS-visible contract of the addon changes.
  Napi::Value AbiVersion(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), 1); }
};

}  // namespace nstar

using NstarAddon = nstar::Addon;
NODE_API_ADDON(NstarAddon)
