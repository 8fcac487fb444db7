// Mapping native failures to the JS `NodevisorError`.
//
// Runs on: the JS thread only (it creates JS values). Worker threads report failures as
// plain values (an errno and the failing syscall) that the JS thread turns into errors here.
#pragma once

#include <napi.h>

#include <string>

#include "sys/errno_name.h"
#include "sys/result.h"

namespace nodevisor::addon {

using sys::errno_name;

struct NativeFailure {
  std::string code;     // "ENOENT", "EKVM_CREATE_VM", ...
  int errnum = 0;       // errno, 0 when the failure is not a system call's
  std::string syscall;  // failing system call, empty when none
  std::string path;     // path involved, empty when none
  std::string message;  // human text, without the code prefix
};

// The failure an Error (native/sys/result.h) reports. Any thread (plain values).
NativeFailure to_failure(const Error& error);

// Builds a NodevisorError (or a plain Error before `init` was called).
Napi::Error make_error(Napi::Env env, const NativeFailure& failure);

}  // namespace nodevisor::addon
