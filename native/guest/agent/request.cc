#include "request.h"

#include "errors.h"
#include "validate.h"

namespace nodevisor::agent {

namespace {
constexpr size_t kMaxArgs = 1024;
constexpr size_t kMaxEnv = 1024;
constexpr size_t kMaxGroups = 64;
constexpr int64_t kMaxUnixId = 0xfffffffe;  // (uid_t)-1 means "unchanged" to the kernel
}  // namespace

std::string Fields::string(const char* name) const {
  auto v = optional_string(name);
  if (!v) fail("EINVAL", "missing field " + field_name(name));
  return *v;
}

std::optional<std::string> Fields::optional_string(const char* name) const {
  const json::Value* v = get(name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) fail("EINVAL", field_name(name) + " must be a string");
  if (v->as_string().find('\0') != std::string::npos) fail("EINVAL", field_name(name) + " contains NUL");
  return v->as_string();
}

int64_t Fields::integer(const char* name, int64_t min, int64_t max) const {
  auto v = optional_integer(name, min, max);
  if (!v) fail("EINVAL", "missing field " + field_name(name));
  return *v;
}

std::optional<int64_t> Fields::optional_integer(const char* name, int64_t min, int64_t max) const {
  const json::Value* v = get(name);
  if (v == nullptr) return std::nullopt;
  auto n = v->as_int();
  if (!n) fail("EINVAL", field_name(name) + " must be an integer");
  if (*n < min || *n > max) {
    fail("EINVAL", field_name(name) + " must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return n;
}

bool Fields::optional_bool(const char* name, bool fallback) const {
  const json::Value* v = get(name);
  if (v == nullptr) return fallback;
  if (!v->is_bool()) fail("EINVAL", field_name(name) + " must be a boolean");
  return v->as_bool();
}

std::vector<std::string> Fields::string_array(const char* name, size_t max_items, bool required) const {
  const json::Value* v = get(name);
  if (v == nullptr) {
    if (required) fail("EINVAL", "missing field " + field_name(name));
    return {};
  }
  if (!v->is_array()) fail("EINVAL", field_name(name) + " must be an array of strings");
  if (v->items().size() > max_items) {
    fail("EINVAL", field_name(name) + " has more than " + std::to_string(max_items) + " entries");
  }
  std::vector<std::string> out;
  for (const auto& item : v->items()) {
    if (!item.is_string()) fail("EINVAL", field_name(name) + " must be an array of strings");
    if (item.as_string().find('\0') != std::string::npos) fail("EINVAL", field_name(name) + " contains NUL");
    out.push_back(item.as_string());
  }
  return out;
}

std::vector<int64_t> Fields::integer_array(const char* name, size_t max_items, int64_t min, int64_t max) const {
  const json::Value* v = get(name);
  if (v == nullptr) return {};
  if (!v->is_array() || v->items().size() > max_items) {
    fail("EINVAL", field_name(name) + " must be an array of at most " + std::to_string(max_items) + " integers");
  }
  std::vector<int64_t> out;
  for (const auto& item : v->items()) {
    auto n = item.as_int();
    if (!n || *n < min || *n > max) fail("EINVAL", field_name(name) + " must hold integers in range");
    out.push_back(*n);
  }
  return out;
}

std::string Fields::id(const char* name) const {
  auto v = optional_id(name);
  if (!v) fail("EINVAL", "missing field " + field_name(name));
  return *v;
}

std::optional<std::string> Fields::optional_id(const char* name) const {
  auto v = optional_string(name);
  if (v && !valid_id(*v)) {
    fail("EID", "invalid " + field_name(name) + ": it must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$ (at most 128 bytes)");
  }
  return v;
}

std::string Fields::path(const char* name) const {
  std::string v = string(name);
  if (!normal_absolute_path(v)) {
    fail("EPATH", field_name(name) + " must be an absolute path without '.', '..' or empty components");
  }
  return v;
}

ProcessSpec parse_process(const Fields& request) {
  const json::Value* p = request.get("process");
  if (p == nullptr) fail("EINVAL", "missing field process");
  if (!p->is_object()) fail("EINVAL", "process must be an object");
  Fields f(*p, "process.");
  ProcessSpec spec;
  spec.args = f.string_array("args", kMaxArgs, true);
  if (spec.args.empty() || spec.args[0].empty()) fail("EINVAL", "process.args must not be empty");
  spec.env = f.string_array("env", kMaxEnv, false);
  for (const auto& e : spec.env) {
    if (e.find('=') == std::string::npos || e[0] == '=') fail("EINVAL", "process.env entries must be NAME=value");
  }
  if (f.get("cwd") != nullptr) spec.cwd = f.path("cwd");
  spec.uid = static_cast<uid_t>(f.optional_integer("uid", 0, kMaxUnixId).value_or(0));
  spec.gid = static_cast<gid_t>(f.optional_integer("gid", 0, kMaxUnixId).value_or(0));
  for (int64_t g : f.integer_array("additionalGids", kMaxGroups, 0, kMaxUnixId)) {
    spec.additional_gids.push_back(static_cast<gid_t>(g));
  }
  spec.privileges = parse_privileges(f);
  return spec;
}

}  // namespace nodevisor::agent
