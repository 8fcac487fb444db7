// Errors as values for the VMM core: a failing step returns an Error carrying the errno, the
// system call and a message; nothing in native/vmm throws across a thread boundary.
//
// Runs on: any thread. (std::expected is C++23; this is the small subset we need.)
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace nodevisor::vmm {

struct Error {
  std::string code;     // "ENOENT", "EKVM_CREATE_VM", "EINVAL", ...
  int errnum = 0;       // errno, 0 when not a system call's failure
  std::string syscall;  // failing system call or ioctl, empty when none
  std::string path;     // file involved, empty when none
  std::string message;  // what we were doing, for humans
};

// A failed system call: code is the caller's nodevisor code (e.g. "EKVM_CREATE_VM") or,
// when empty, filled in by the addon from errno.
Error sys_error(int errnum, std::string syscall, std::string message, std::string code = {});
// A failure that is not a system call's (bad input, unsupported state).
Error plain_error(std::string code, std::string message);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
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

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
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
#define NV_TRY(expr)                                   \
  do {                                                 \
    auto nv_try_result_ = (expr);                      \
    if (!nv_try_result_.ok()) return nv_try_result_.error(); \
  } while (0)

}  // namespace nodevisor::vmm
