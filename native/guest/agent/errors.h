// Errors of request handling. A handler throws AgentError; the dispatcher (agent.cc, main loop
// thread) turns it into an error frame {id, type:'error', code, message} and keeps serving.
#ifndef NODEVISOR_AGENT_ERRORS_H
#define NODEVISOR_AGENT_ERRORS_H

#include <cerrno>
#include <cstring>
#include <string>

namespace nv::agent {

struct AgentError {
  std::string code;     // a protocol code (EINVAL, EID, ...) or an errno name (ENOENT, ...)
  std::string message;  // for people: names the field, the call and the path
};

[[noreturn]] inline void fail(std::string code, std::string message) {
  throw AgentError{std::move(code), std::move(message)};
}

// The errno's symbolic name ("ENOENT"), which is what the host matches on.
inline std::string errno_name(int err) {
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
  std::string unknown = "E";
  unknown += std::to_string(err);
  return unknown;
}

// "<what>: <strerror>" with the errno's name as code.
[[noreturn]] inline void fail_errno(int err, const std::string& what) {
  throw AgentError{errno_name(err), what + ": " + std::strerror(err)};
}

}  // namespace nv::agent

#endif
