// Each file of the addon registers its own functions on the module's exports; module.cc
// calls them in turn. Runs on: the JS thread, at module load.
#pragma once

#include <napi.h>

namespace nodevisor::addon {

void register_build_info(Napi::Env env, Napi::Object exports);
void register_netns(Napi::Env env, Napi::Object exports);
void register_blockdev(Napi::Env env, Napi::Object exports);
void register_vm(Napi::Env env, Napi::Object exports);

}  // namespace nodevisor::addon
