// Errors of request handling. A handler throws AgentError; the dispatcher (agent.cc, main loop
// thread) turns it into an error frame {id, type:'error', code, message} and keeps serving.
// AgentError is a std::exception, so the main loop's catch-all also catches one thrown outside a
// request (a failed channel reopen as PID 1) instead of letting it end PID 1 and the guest.
#pragma once

#include <cerrno>
#include <cstring>
#include <exception>
#include <string>

#include "sys/errno_name.h"

namespace nodevisor::agent {

struct AgentError : std::exception {
  AgentError(std::string c, std::string m) : code(std::move(c)), message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }

  std::string code;     // a protocol code (EINVAL, EID, ...) or an errno name (ENOENT, ...)
  std::string message;  // for people: names the field, the call and the path
};

[[noreturn]] inline void fail(std::string code, std::string message) {
  throw AgentError(std::move(code), std::move(message));
}

// The errno's symbolic name ("ENOENT") is what the host matches on.
using sys::errno_name;

// "<what>: <strerror>" with the errno's name as code.
[[noreturn]] inline void fail_errno(int err, const std::string& what) {
  throw AgentError(errno_name(err), what + ": " + std::strerror(err));
}

}  // namespace nodevisor::agent
