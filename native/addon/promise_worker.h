// The addon's one promise-returning AsyncWorker: runs a piece of native work that returns a
// Result<T> (native/sys/result.h) on a libuv worker thread and settles a promise with it.
//
// Errors raised off-thread have no JS stack of their own (the work ran on a libuv thread and
// the error is made in a libuv callback), so `start` keeps an Error made on the caller's JS
// stack and a rejection's `stack` is its own message followed by the caller's frames: the
// failure points at the code that asked for the work, as sharp does for its pipelines.
//
// Threads: `start`, `OnOK` and `to_js` run on the JS thread; `work` runs on a libuv worker
// thread and must not touch N-API (capture plain C++ values, copied out of the JS arguments
// beforehand). AsyncWorker deletes itself after OnOK.
#pragma once

#include <napi.h>

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "addon/errors.h"
#include "sys/result.h"

namespace nodevisor::addon {

// Rewrites `error.stack` to `error`'s own header (the lines before its first frame) followed by
// the frames of `caller` (an Error made on the JS thread when the work was asked for). JS thread.
void attach_caller_stack(Napi::Env env, Napi::Value error, Napi::Value caller);

template <typename T>
class PromiseWorker final : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result<T>()>;
  // How a value becomes JS; none for Result<void>, which resolves undefined.
  using ToJs = std::conditional_t<std::is_void_v<T>, std::nullptr_t,
                                  std::function<Napi::Value(Napi::Env, const std::conditional_t<std::is_void_v<T>, int, T>&)>>;

  // Called on the JS thread before the promise rejects because `work` failed (to let go of
  // what was set up for the work).
  using OnError = std::function<void(Napi::Env)>;

  // JS thread. Queues `work` and returns the promise it settles.
  static Napi::Promise start(Napi::Env env, const char* name, Work work, ToJs to_js = {}, OnError on_error = {}) {
    auto* worker = new PromiseWorker(env, name, std::move(work), std::move(to_js), std::move(on_error));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 private:
  PromiseWorker(Napi::Env env, const char* name, Work work, ToJs to_js, OnError on_error)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        caller_(Napi::Persistent(Napi::Error::New(env).Value())),
        work_(std::move(work)),
        to_js_(std::move(to_js)),
        on_error_(std::move(on_error)) {}

  // libuv worker thread: no N-API here.
  void Execute() override { result_.emplace(work_()); }

  // JS thread.
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      if (!result_->ok()) {
        if (on_error_) on_error_(env);
        reject(make_error(env, to_failure(result_->error())).Value());
      } else if constexpr (std::is_void_v<T>) {
        deferred_.Resolve(env.Undefined());
      } else {
        deferred_.Resolve(to_js_(env, result_->value()));
      }
    } catch (const Napi::Error& e) {
      reject(e.Value());
    }
  }

  void reject(Napi::Value error) {
    attach_caller_stack(Env(), error, caller_.Value());
    deferred_.Reject(error);
  }

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference caller_;
  Work work_;
  ToJs to_js_;
  OnError on_error_;
  std::optional<Result<T>> result_;
};

}  // namespace nodevisor::addon
