#include "vmm/util/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys/unique_fd.h"
#include "vmm/util/open_checked.h"

namespace nodevisor::vmm {

Result<std::vector<uint8_t>> read_whole_file(const std::string& path, uint64_t max_size, const char* what,
                                             const char* limit) {
  auto with_path = [&](Error e) {
    e.path = path;
    return e;
  };
  // The type before the open: a FIFO named as a kernel would block open() forever.
  struct stat st {};
  auto path_fd = open_path(path, st, std::string("the ") + what);
  if (!path_fd.ok()) return path_fd.error();
  if (!S_ISREG(st.st_mode)) return with_path(plain_error("EINVAL", std::string("the ") + what + " " + path + " is not a regular file"));
  auto opened = reopen(path_fd.value(), O_RDONLY, path, std::string("the ") + what);
  if (!opened.ok()) return opened.error();
  UniqueFd fd = std::move(opened.value());
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
