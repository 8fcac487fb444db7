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

}  // namespace nodevisor::addon
