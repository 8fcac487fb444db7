#include "addon/errors.h"

#include <cerrno>
#include <cstring>

#include "addon/addon_state.h"

namespace nodevisor::addon {

std::string errno_code(int errnum) {
  // strerrorname_np is glibc >= 2.32; Debian 12 has 2.36.
  const char* name = strerrorname_np(errnum);
  if (name != nullptr) return name;
  std::string code = "E";  // built in two steps: GCC 12 warns falsely on "E" + ...
  code += std::to_string(errnum);
  return code;
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
