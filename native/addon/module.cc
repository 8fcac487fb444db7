// Module entry point: creates the per-environment state and registers the functions.
//
// Runs on: the JS thread of each environment (main thread or worker) that loads the addon.
#include <napi.h>

#include "addon/addon_state.h"
#include "addon/errors.h"
#include "addon/exports.h"

namespace nodevisor::addon {

AddonState& AddonState::of(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

namespace {

// init(NodevisorError): called once by src/native/binding.ts right after loading, so C++
// can construct errors of the JS class (better-sqlite3 does the same with SqliteError).
Napi::Value init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "init(errorClass): errorClass must be a constructor");
  }
  AddonState::of(env).error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

}  // namespace

Napi::Object module_init(Napi::Env env, Napi::Object exports) {
  // Node deletes the instance data when this environment shuts down.
  env.SetInstanceData<AddonState>(new AddonState());
  exports.Set("init", Napi::Function::New(env, init, "init"));
  register_build_info(env, exports);
  register_netns(env, exports);
  register_blockdev(env, exports);
  register_vm(env, exports);
  return exports;
}

}  // namespace nodevisor::addon

// NODE_API_MODULE needs an unqualified name.
static Napi::Object InitNodevisor(Napi::Env env, Napi::Object exports) {
  return nodevisor::addon::module_init(env, exports);
}
NODE_API_MODULE(nodevisor, InitNodevisor)
