// Bridge from native/sys to JS: Error -> NativeFailure (-> NodevisorError), and a
// promise-returning AsyncWorker that runs one native/sys call off the JS thread.
//
// Threads: `work` runs on a libuv worker thread and must not touch N-API (it gets plain
// C++ values copied out of the JS arguments beforehand, the "baton"); `to_js` and the
// promise settlement run on the JS thread, in OnOK.
#pragma once

#include <napi.h>

#include <functional>
#include <optional>
#include <utility>

#include "addon/errors.h"
#include "sys/result.h"

namespace nodevisor::addon {

template <typename T>
class SysPromiseWorker final : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result<T>()>;
  using ToJs = std::function<Napi::Value(Napi::Env, const T&)>;

  // JS thread. Queues `work` and returns the promise it settles. AsyncWorker deletes
  // itself after OnOK.
  static Napi::Promise start(Napi::Env env, const char* name, Work work, ToJs to_js) {
    auto* worker = new SysPromiseWorker(env, name, std::move(work), std::move(to_js));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 private:
  SysPromiseWorker(Napi::Env env, const char* name, Work work, ToJs to_js)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        to_js_(std::move(to_js)) {}

  // libuv worker thread: no N-API here.
  void Execute() override { result_.emplace(work_()); }

  // JS thread.
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      if (result_->ok()) {
        deferred_.Resolve(to_js_(env, result_->value()));
      } else {
        deferred_.Reject(make_error(env, to_failure(result_->error())).Value());
      }
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  Napi::Promise::Deferred deferred_;
  Work work_;
  ToJs to_js_;
  std::optional<Result<T>> result_;
};

}  // namespace nodevisor::addon
