// Errors as values for all of native/ (the VMM core, native/sys, the addon's workers): a failing
// step returns an Error carrying a code, the errno, the system call and a message instead of
// throwing, so results cross thread and C ABI boundaries as plain data and the addon decides how
// to show them to JS (native/addon/errors.h).
//
// Runs on: any thread; no global state. (std::expected is C++23; this is the small subset we need.)
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

#include "sys/errno_name.h"

namespace nodevisor {

struct Error {
  std::string code;     // "ENOENT", "EKVM_CREATE_VM", "EINVAL", ...; empty: named from errnum
  int errnum = 0;       // errno; 0 when not a system call's failure
  std::string syscall;  // failing system call or ioctl, empty when none
  std::string path;     // file involved, empty when none
  std::string message;  // what we were doing, for humans, without errno text

  // A failed system call: takes the current errno, so call it right after the failure.
  static Error from_errno(std::string syscall, std::string path, std::string message) {
    return Error{{}, errno, std::move(syscall), std::move(path), std::move(message)};
  }
  static Error with_errno(int errnum, std::string syscall, std::string path, std::string message) {
    return Error{{}, errnum, std::move(syscall), std::move(path), std::move(message)};
  }
  // A failed check that is not a system call's ("not a network namespace"): `errnum` is the
  // errno that best names it and becomes the code; the message gets no strerror text.
  static Error check(int errnum, std::string path, std::string message) {
    return Error{sys::errno_name(errnum), errnum, {}, std::move(path), std::move(message)};
  }
  // True for `check` errors and plain_error ones: no system call failed.
  bool is_check() const { return syscall.empty() && !code.empty(); }
  // This error, naming the file it is about.
  Error at(std::string file) && {
    path = std::move(file);
    return std::move(*this);
  }
};

// A failed system call: code is the caller's nodevisor code (e.g. "EKVM_CREATE_VM") or, when
// empty, the errno's name.
inline Error sys_error(int errnum, std::string syscall, std::string message, std::string code = {}) {
  return Error{std::move(code), errnum, std::move(syscall), {}, std::move(message)};
}
// A failure that is not a system call's (bad input, unsupported state).
inline Error plain_error(std::string code, std::string message) {
  return Error{std::move(code), 0, {}, {}, std::move(message)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}      // NOLINT: implicit on purpose
  Result(Error error) : value_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(value_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  const T& value() const& { return std::get<T>(value_); }
  const Error& error() const { return std::get<Error>(value_); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Error> value_;
};

// What a Status returns on success when `return {};` would read badly.
struct Ok {};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Ok) {}                                                  // NOLINT: implicit on purpose
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

// Propagates a failed Result/Status out of the calling function.
#define NV_TRY(expr)                                         \
  do {                                                       \
    auto nv_try_result_ = (expr);                            \
    if (!nv_try_result_.ok()) return nv_try_result_.error(); \
  } while (0)

}  // namespace nodevisor
