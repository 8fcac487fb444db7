// N-API binding of native/sys/blockdev: inspectBlockDevice(path) -> Promise<info>.
//
// Threads: the JS thread copies the path and queues; a libuv worker thread runs the stat
// and ioctls (a busy or dying device can make them wait); the JS thread builds the result.
#include <napi.h>

#include <string>

#include "addon/exports.h"
#include "addon/promise_worker.h"
#include "sys/blockdev.h"

namespace nodevisor::addon {

namespace {

Napi::Value info_to_js(Napi::Env env, const sys::BlockDeviceInfo& info) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", sys::to_string(info.kind));
  out.Set("major", info.major);
  out.Set("minor", info.minor);
  // Exact up to 8 PiB (2^53 bytes); larger devices do not exist yet.
  out.Set("sizeBytes", static_cast<double>(info.size_bytes));
  out.Set("logicalBlockSize", info.logical_block_size);
  out.Set("readOnly", info.read_only);
  out.Set("deviceMapper", info.device_mapper);
  return out;
}

Napi::Value inspect_block_device(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(info.Env(), "inspectBlockDevice(path): path must be a string");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return PromiseWorker<sys::BlockDeviceInfo>::start(
      info.Env(), "nodevisor.inspectBlockDevice", [path] { return sys::inspect_block_device(path); },
      info_to_js);
}

}  // namespace

void register_blockdev(Napi::Env env, Napi::Object exports) {
  exports.Set("inspectBlockDevice", Napi::Function::New(env, inspect_block_device, "inspectBlockDevice"));
}

}  // namespace nodevisor::addon
