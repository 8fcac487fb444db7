// Per-environment state of the addon (one per Node main thread or worker thread).
//
// Runs on: the JS thread of the environment that loaded the addon. Stored as the
// environment's instance data, so the addon works in worker threads and is freed when
// the environment shuts down (Node calls the finalizer from its cleanup).
#pragma once

#include <napi.h>

namespace nodevisor::addon {

struct AddonState {
  // The JS class `NodevisorError` (defined in src/native/errors.ts, handed over by
  // `init`). C++ constructs errors of that class so JS sees one error type.
  Napi::FunctionReference error_class;

  static AddonState& of(Napi::Env env);
};

}  // namespace nodevisor::addon
