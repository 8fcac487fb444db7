#include "sys/blockdev.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "sys/unique_fd.h"

namespace nodevisor::sys {

namespace {

// The file rule for read_only (see blockdev.h). Uses the O_PATH fd through /proc so the
// answer is about the object already stat'ed, not whatever the path names by now.
bool file_read_only(int path_fd) {
  std::string self = "/proc/self/fd/" + std::to_string(path_fd);
  if (::faccessat(AT_FDCWD, self.c_str(), W_OK, AT_EACCESS) != 0) return true;
  struct statvfs vfs {};
  if (::fstatvfs(path_fd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY) != 0) return true;
  return false;
}

Status fill_block(int path_fd, const std::string& path, BlockDeviceInfo& info) {
  // Reopen the very inode for the ioctls; O_RDONLY works on read-only devices too, and
  // O_NONBLOCK keeps removable media without a disc from making open wait.
  std::string self = "/proc/self/fd/" + std::to_string(path_fd);
  UniqueFd dev(::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!dev) return Error::from_errno("open", path, "cannot open block device " + path);

  std::uint64_t size = 0;
  if (::ioctl(dev.get(), BLKGETSIZE64, &size) != 0) {
    return Error::from_errno("ioctl", path, "cannot read the size of " + path + " (BLKGETSIZE64)");
  }
  int sector = 0;
  if (::ioctl(dev.get(), BLKSSZGET, &sector) != 0) {
    return Error::from_errno("ioctl", path,
                                "cannot read the logical block size of " + path + " (BLKSSZGET)");
  }
  int ro = 0;
  if (::ioctl(dev.get(), BLKROGET, &ro) != 0) {
    return Error::from_errno("ioctl", path, "cannot read the read-only flag of " + path + " (BLKROGET)");
  }
  info.size_bytes = size;
  info.logical_block_size = static_cast<unsigned>(sector);
  info.read_only = ro != 0;

  std::string dm = "/sys/dev/block/" + std::to_string(info.major) + ":" + std::to_string(info.minor) + "/dm";
  info.device_mapper = ::access(dm.c_str(), F_OK) == 0;
  return Ok{};
}

}  // namespace

const char* to_string(BlockKind kind) {
  switch (kind) {
    case BlockKind::block: return "block";
    case BlockKind::file: return "file";
    case BlockKind::other: return "other";
  }
  return "other";
}

Result<BlockDeviceInfo> inspect_block_device(const std::string& path) {
  // O_PATH: never opens the object itself, so a FIFO cannot block us and a character
  // device (a watchdog, a tty) sees no open(). Block devices are reopened in fill_block.
  UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd) return Error::from_errno("open", path, "cannot inspect " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("fstat", path, "cannot stat " + path);

  BlockDeviceInfo info;
  if (S_ISBLK(st.st_mode)) {
    info.kind = BlockKind::block;
    info.major = ::major(st.st_rdev);
    info.minor = ::minor(st.st_rdev);
    Status filled = fill_block(fd.get(), path, info);
    if (!filled) return filled.error();
    return info;
  }
  if (S_ISREG(st.st_mode)) {
    info.kind = BlockKind::file;
    info.size_bytes = static_cast<std::uint64_t>(st.st_size);
    info.logical_block_size = 512;
  }
  info.read_only = file_read_only(fd.get());
  return info;
}

}  // namespace nodevisor::sys
