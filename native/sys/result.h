// Error values for native/sys: every fallible helper returns SysResult<T> (a value or a
// SysError) instead of throwing, so results cross thread and C ABI boundaries as plain data
// and the addon decides how to show them to JS (native/addon/errors.h).
//
// Runs on: any thread; no global state.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace nodevisor::sys {

struct SysError {
  // errno of the failing system call. For a failed check that is not a system call's
  // (e.g. "not a network namespace") it is the errno that best names it (EINVAL) and
  // `syscall` is empty.
  int errnum = 0;
  std::string syscall;  // "open", "setns", ... ; empty for a failed check
  std::string path;     // path involved, empty when none
  std::string message;  // human text without errno text, e.g. "cannot open /x"

  // A failed system call: takes the current errno, so call it right after the failure.
  static SysError from_errno(std::string syscall, std::string path, std::string message) {
    return SysError{errno, std::move(syscall), std::move(path), std::move(message)};
  }
  static SysError with_errno(int errnum, std::string syscall, std::string path,
                             std::string message) {
    return SysError{errnum, std::move(syscall), std::move(path), std::move(message)};
  }
  // A failed check (not a system call's failure).
  static SysError check(int errnum, std::string path, std::string message) {
    return SysError{errnum, {}, std::move(path), std::move(message)};
  }
  bool is_check() const { return syscall.empty(); }
};

// Either a T or a SysError. Small on purpose (std::expected is C++23).
template <typename T>
class [[nodiscard]] SysResult {
 public:
  SysResult(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  SysResult(SysError error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const SysError& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, SysError> state_;
};

// The T of a result that carries nothing but success.
struct Ok {};
using SysStatus = SysResult<Ok>;

}  // namespace nodevisor::sys
