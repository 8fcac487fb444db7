// N-API bindings of native/sys/netns: createNetNs, deleteNetNs, checkNetNs (promises, run on
// libuv worker threads), threadNetNsIdentity and enterNetNs (synchronous, on the JS thread).
//
// enterNetNs is the one place where nodevisor changes the namespace of the JS thread
// itself: a child process spawned while it runs is forked from this thread and so starts
// in the target namespace. It always switches back before returning, also when the
// callback throws; if switching back fails the process is stopped (napi_fatal_error),
// because running on with the JS thread in a foreign namespace would be silent and unsafe.
#include <napi.h>

#include <string>

#include "addon/errors.h"
#include "addon/exports.h"
#include "addon/promise_worker.h"
#include "sys/netns.h"

namespace nodevisor::addon {

namespace {

std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  }
  return info[index].As<Napi::String>().Utf8Value();
}

Napi::Value identity_to_js(Napi::Env env, const sys::NsIdentity& id) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("dev", static_cast<double>(id.dev));
  out.Set("ino", static_cast<double>(id.ino));
  return out;
}

// createNetNs(dir, name) -> Promise<path>. JS thread queues; a worker thread runs
// create_netns, which itself starts the short-lived thread that unshares.
Napi::Value create_netns(const Napi::CallbackInfo& info) {
  std::string dir = string_arg(info, 0, "createNetNs(dir, name): dir");
  std::string name = string_arg(info, 1, "createNetNs(dir, name): name");
  return PromiseWorker<std::string>::start(
      info.Env(), "nodevisor.createNetNs", [dir, name] { return sys::create_netns(dir, name); },
      [](Napi::Env env, const std::string& path) -> Napi::Value { return Napi::String::New(env, path); });
}

// deleteNetNs(path) -> Promise<boolean>: true when something was removed. Worker thread.
Napi::Value delete_netns(const Napi::CallbackInfo& info) {
  std::string path = string_arg(info, 0, "deleteNetNs(path): path");
  return PromiseWorker<bool>::start(
      info.Env(), "nodevisor.deleteNetNs", [path] { return sys::delete_netns(path); },
      [](Napi::Env env, const bool& removed) -> Napi::Value { return Napi::Boolean::New(env, removed); });
}

// checkNetNs(path) -> Promise<{dev, ino}>; rejects "not a network namespace: <path>".
// Worker thread (the path may be on a slow filesystem).
Napi::Value check_netns(const Napi::CallbackInfo& info) {
  std::string path = string_arg(info, 0, "checkNetNs(path): path");
  return PromiseWorker<sys::NsIdentity>::start(
      info.Env(), "nodevisor.checkNetNs", [path] { return sys::check_netns(path); }, identity_to_js);
}

// threadNetNsIdentity() -> {dev, ino} of the JS thread's namespace. Must run on the JS
// thread, since that is the thread asked about; it is a stat on procfs, which does not
// wait on a disk.
Napi::Value thread_netns_identity(const Napi::CallbackInfo& info) {
  auto id = sys::current_thread_netns_identity();
  if (!id) throw make_error(info.Env(), to_failure(id.error()));
  return identity_to_js(info.Env(), id.value());
}

void restore_or_die(sys::NetnsSwitch& entered) {
  Status back = entered.restore();
  if (!back) {
    std::string text = back.error().message + " (" + errno_name(back.error().errnum) + ")";
    Napi::Error::Fatal("nodevisor enterNetNs", text.c_str());
  }
}

// enterNetNs(path, fn) -> fn's return value. JS thread, synchronous: open and check the
// target, setns this thread into it, call fn, setns back. src/netns rejects async
// functions before calling and thenable results after.
Napi::Value enter_netns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = string_arg(info, 0, "enterNetNs(path, fn): path");
  if (info.Length() < 2 || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "enterNetNs(path, fn): fn must be a function");
  }
  Napi::Function fn = info[1].As<Napi::Function>();

  auto entered = sys::NetnsSwitch::enter(path);
  if (!entered) throw make_error(env, to_failure(entered.error()));

  Napi::Value result;
  try {
    result = fn.Call(env.Undefined(), {});
  } catch (...) {
    restore_or_die(entered.value());
    throw;  // the JS exception from fn, unchanged
  }
  restore_or_die(entered.value());
  return result;
}

}  // namespace

void register_netns(Napi::Env env, Napi::Object exports) {
  exports.Set("createNetNs", Napi::Function::New(env, create_netns, "createNetNs"));
  exports.Set("deleteNetNs", Napi::Function::New(env, delete_netns, "deleteNetNs"));
  exports.Set("checkNetNs", Napi::Function::New(env, check_netns, "checkNetNs"));
  exports.Set("threadNetNsIdentity", Napi::Function::New(env, thread_netns_identity, "threadNetNsIdentity"));
  exports.Set("enterNetNs", Napi::Function::New(env, enter_netns, "enterNetNs"));
}

}  // namespace nodevisor::addon
