#include "init.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "log.h"

namespace nodevisor::agent {

namespace {

void mount_one(const char* source, const char* target, const char* type, unsigned long flags, const char* data) {
  ::mkdir(target, 0755);
  if (::mount(source, target, type, flags, data) != 0 && errno != EBUSY) {
    log("mount %s on %s: %s", type, target, std::strerror(errno));
  }
}

}  // namespace

void ensure_stdio_open() {
  for (;;) {
    int fd = ::open("/dev/null", O_RDWR);
    if (fd < 0) {
      // No /dev/null yet (before devtmpfs): a pipe end still occupies the number.
      int fds[2];
      if (::pipe(fds) != 0) return;
      if (fds[0] > 2) ::close(fds[0]);
      if (fds[1] > 2) ::close(fds[1]);
      if (fds[0] > 2 && fds[1] > 2) return;
      continue;
    }
    if (fd > 2) {
      ::close(fd);
      return;
    }
  }
}

void load_modules(const char* list_path) {
  int list = ::open(list_path, O_RDONLY | O_CLOEXEC);
  if (list < 0) {
    if (errno != ENOENT) log("open %s: %s", list_path, std::strerror(errno));
    return;
  }
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(list, buffer, sizeof buffer)) > 0 && text.size() < (1u << 20)) text.append(buffer, static_cast<size_t>(n));
  ::close(list);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string path = text.substr(start, end - start);
    start = end + 1;
    if (path.empty() || path[0] == '#') continue;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      log("module %s: %s", path.c_str(), std::strerror(errno));
      continue;
    }
    // Modules are stored uncompressed by `nodevisor guest build`, so no
    // MODULE_INIT_COMPRESSED_FILE (which needs in-kernel decompression support) is needed.
    if (::syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) {
      log("finit_module %s: %s", path.c_str(), std::strerror(errno));
    }
    ::close(fd);
  }
}

void boot_as_pid1() {
  ensure_stdio_open();
  mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  load_modules("/lib/modules/nodevisor.list");
}

void power_off() {
  ::sync();
  ::reboot(RB_POWER_OFF);
  for (;;) ::pause();
}

}  // namespace nodevisor::agent
