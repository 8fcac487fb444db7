// `buildInfo()`: what this binary is, for `nodevisor info`, bug reports and tests that
// check the package loaded the addon it built.
//
// Runs on: the JS thread.
#include <napi.h>

#include "addon/exports.h"

#ifndef NODEVISOR_VERSION
#define NODEVISOR_VERSION "unknown"
#endif

namespace nodevisor::addon {

namespace {

Napi::Value build_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("version", NODEVISOR_VERSION);
  out.Set("napiVersion", NAPI_VERSION);
  out.Set("compiler", __VERSION__);
  out.Set("cplusplus", static_cast<double>(__cplusplus));
#if defined(__SANITIZE_ADDRESS__)
  out.Set("sanitizers", "address,undefined");
#else
  out.Set("sanitizers", "");
#endif
#if defined(NDEBUG)
  out.Set("assertions", false);
#else
  out.Set("assertions", true);
#endif
  out.Set("arch",
#if defined(__x86_64__)
          "x64"
#else
          "other"
#endif
  );
  return out;
}

}  // namespace

void register_build_info(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, build_info, "buildInfo"));
}

}  // namespace nodevisor::addon
