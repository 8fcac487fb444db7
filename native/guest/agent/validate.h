// Checks on names and paths that come from the host. Ids become keys and hostnames; paths
// name mount points and directories inside a container, so none may climb out with "..".
#pragma once

#include <string_view>

namespace nodevisor::agent {

inline constexpr size_t kMaxIdLength = 128;
inline constexpr size_t kMaxPathLength = 4095;

// ^[A-Za-z0-9][A-Za-z0-9_.-]*$, at most kMaxIdLength bytes.
bool valid_id(std::string_view id);

// Absolute, no empty, "." or ".." components, no trailing slash except for "/" itself, no NUL,
// at most kMaxPathLength bytes.
bool normal_absolute_path(std::string_view path);

}  // namespace nodevisor::agent
