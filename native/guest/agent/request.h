// Typed access to the fields of one request object, with the checks of docs/protocol.md. Every
// accessor throws AgentError (EINVAL naming the field, EID, EPATH) so handlers read like the
// protocol text. Main loop thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "guest/protocol/json.h"
#include "privileges.h"

namespace nodevisor::agent {

class Fields {
 public:
  explicit Fields(const json::Value& object, std::string prefix = "")
      : object_(object), prefix_(std::move(prefix)) {}

  const json::Value* get(const char* name) const { return object_.get(name); }
  std::string string(const char* name) const;
  std::optional<std::string> optional_string(const char* name) const;
  int64_t integer(const char* name, int64_t min, int64_t max) const;
  std::optional<int64_t> optional_integer(const char* name, int64_t min, int64_t max) const;
  bool optional_bool(const char* name, bool fallback) const;
  std::vector<std::string> string_array(const char* name, size_t max_items, bool required) const;
  std::vector<int64_t> integer_array(const char* name, size_t max_items, int64_t min, int64_t max) const;
  // An id field checked against the id pattern (EID).
  std::string id(const char* name) const;
  std::optional<std::string> optional_id(const char* name) const;
  // An absolute, normal path (EPATH).
  std::string path(const char* name) const;

  std::string field_name(std::string_view name) const { return prefix_ + std::string(name); }

 private:
  const json::Value& object_;
  std::string prefix_;
};

// The `process` object of container.create and exec.
struct ProcessSpec {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;
  Privileges privileges;  // capabilities, noNewPrivileges, rlimits, seccomp (privileges.h)
};

ProcessSpec parse_process(const Fields& request);

}  // namespace nodevisor::agent
