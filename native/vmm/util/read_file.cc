#include "vmm/util/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys/unique_fd.h"

namespace nodevisor::vmm {

Result<std::vector<uint8_t>> read_whole_file(const std::string& path, uint64_t max_size, const char* what,
                                             const char* limit) {
  auto with_path = [&](Error e) {
    e.path = path;
    return e;
  };
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return with_path(sys_error(errno, "open", std::string("cannot open the ") + what + " " + path));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return with_path(sys_error(errno, "fstat", std::string("cannot stat the ") + what));
  if (!S_ISREG(st.st_mode)) return with_path(plain_error("EINVAL", std::string("the ") + what + " " + path + " is not a regular file"));
  if (static_cast<uint64_t>(st.st_size) > max_size) {
    return with_path(plain_error("E2BIG", std::string("the ") + what + " " + path + " (" + std::to_string(st.st_size) +
                                              " bytes) is larger than " + limit));
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return with_path(sys_error(errno, "read", std::string("cannot read the ") + what));
    if (n == 0) break;  // the file shrank while we read it
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace nodevisor::vmm
