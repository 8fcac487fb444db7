// An errno's symbolic name ("ENOENT"): the `code` the host's errors carry, from the addon and
// from the guest agent alike. "E<number>" for an errno glibc has no name for.
//
// Runs on: any thread; pure.
#pragma once

#include <cstring>
#include <string>

namespace nodevisor::sys {

inline std::string errno_name(int errnum) {
  // strerrorname_np is glibc >= 2.32; Debian 12 has 2.36.
  const char* name = strerrorname_np(errnum);
  if (name != nullptr) return name;
  std::string code = "E";  // built in two steps: GCC 12 warns falsely on "E" + ...
  code += std::to_string(errnum);
  return code;
}

}  // namespace nodevisor::sys
