// dm module of the nstar addon (placeholder: filled by its issue).
#include "common.h"

namespace nstar {

void RegisterDm(Napi::Env env, Napi::Object exports) {}

}  // namespace nstar
