#include "addon/errors.h"

#include <cerrno>
#include <cstring>

#include "addon/addon_state.h"

namespace nodevisor::addon {

NativeFailure to_failure(const Error& error) {
  NativeFailure failure;
  failure.code = !error.code.empty() ? error.code : errno_name(error.errnum);
  // A failed check ("not a network namespace") is not a system call's failure: it gets a
  // code but no errno, so the message is not suffixed with strerror text.
  failure.errnum = error.is_check() ? 0 : error.errnum;
  failure.syscall = error.syscall;
  failure.path = error.path;
  failure.message = error.message;
  return failure;
}

Napi::Error make_error(Napi::Env env, const NativeFailure& failure) {
  std::string text = failure.message;
  if (failure.errnum != 0) {
    text += ": ";
    text += std::strerror(failure.errnum);
  }
  AddonState& state = AddonState::of(env);
  if (state.error_class.IsEmpty()) {
    Napi::Error plain = Napi::Error::New(env, text);
    plain.Set("code", failure.code);
    return plain;
  }
  Napi::Object details = Napi::Object::New(env);
  details.Set("code", failure.code);
  if (failure.errnum != 0) details.Set("errno", failure.errnum);
  if (!failure.syscall.empty()) details.Set("syscall", failure.syscall);
  if (!failure.path.empty()) details.Set("path", failure.path);
  Napi::Value err = state.error_class.New({Napi::String::New(env, text), details});
  return Napi::Error(env, err);
}

void attach_caller_stack(Napi::Env env, Napi::Value error, Napi::Value caller) {
  if (!error.IsObject() || !caller.IsObject()) return;
  Napi::Value own = error.As<Napi::Object>().Get("stack");
  Napi::Value theirs = caller.As<Napi::Object>().Get("stack");
  if (!own.IsString() || !theirs.IsString()) return;
  // V8's format: a header ("NodevisorError: message", maybe several lines), then one
  // "\n    at ..." line per frame.
  static constexpr const char* kFrame = "\n    at ";
  std::string own_text = own.As<Napi::String>().Utf8Value();
  std::string caller_text = theirs.As<Napi::String>().Utf8Value();
  const size_t caller_frames = caller_text.find(kFrame);
  if (caller_frames == std::string::npos) return;
  std::string header = own_text.substr(0, own_text.find(kFrame));
  error.As<Napi::Object>().Set("stack", Napi::String::New(env, header + caller_text.substr(caller_frames)));
}

}  // namespace nodevisor::addon
