#include "vmm/util/open_checked.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace nodevisor::vmm {

Result<UniqueFd> open_path(const std::string& path, struct stat& st, const std::string& what) {
  UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd.valid()) {
    Error e = sys_error(errno, "open", "cannot open " + what + " " + path);
    e.path = path;
    return e;
  }
  if (::fstat(fd.get(), &st) != 0) {
    Error e = sys_error(errno, "fstat", "cannot stat " + what + " " + path);
    e.path = path;
    return e;
  }
  return fd;
}

Result<UniqueFd> reopen(const UniqueFd& path_fd, int flags, const std::string& path, const std::string& what) {
  const std::string self = "/proc/self/fd/" + std::to_string(path_fd.get());
  UniqueFd fd(::open(self.c_str(), flags | O_CLOEXEC));
  if (!fd.valid()) {
    Error e = sys_error(errno, "open", "cannot open " + what + " " + path);
    e.path = path;
    return e;
  }
  return fd;
}

}  // namespace nodevisor::vmm
