#include "vmm/devices/virtio/block/block_backend.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/util/open_checked.h"

namespace nodevisor::vmm::virtio {

Result<BlockBackend> BlockBackend::open(const std::string& path, bool read_only) {
  BlockBackend b;
  b.path_ = path;
  b.read_only_ = read_only;
  // The type before the open: a FIFO would block open() forever (a libuv worker with it),
  // a character device would see an open() it did not ask for.
  struct stat st {};
  auto path_fd = open_path(path, st, "disk");
  if (!path_fd.ok()) return path_fd.error();
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    Error e = plain_error("EINVAL", "disk " + path + " is neither a regular file nor a block device");
    e.path = path;
    return e;
  }
  auto opened = reopen(path_fd.value(), read_only ? O_RDONLY : O_RDWR, path, "disk");
  if (!opened.ok()) return opened.error();
  b.fd_ = std::move(opened.value());
  // The inode checked above, now opened: its size and identity.
  if (::fstat(b.fd_.get(), &st) != 0) {
    Error e = sys_error(errno, "fstat", "cannot stat disk " + path);
    e.path = path;
    return e;
  }
  b.dev_ = st.st_dev;
  b.ino_ = st.st_ino;
  if (S_ISREG(st.st_mode)) {
    b.size_ = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    b.dev_ = st.st_rdev;  // the device itself, not the /dev filesystem
    b.ino_ = 0;
    uint64_t bytes = 0;
    if (::ioctl(b.fd_.get(), BLKGETSIZE64, &bytes) != 0) {
      Error e = sys_error(errno, "ioctl(BLKGETSIZE64)", "cannot measure disk " + path);
      e.path = path;
      return e;
    }
    b.size_ = bytes;
  } else {
    Error e = plain_error("EINVAL", "disk " + path + " is neither a regular file nor a block device");
    e.path = path;
    return e;
  }
  return b;
}

Status BlockBackend::read_at(uint64_t offset, std::span<uint8_t> data) const {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pread(fd_.get(), data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "pread", "disk read failed");
    if (n == 0) return plain_error("EIO", "disk read past its end");
    done += static_cast<size_t>(n);
  }
  return {};
}

Status BlockBackend::write_at(uint64_t offset, std::span<const uint8_t> data) const {
  if (read_only_) return plain_error("EROFS", "disk is read-only");
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return sys_error(n < 0 ? errno : EIO, "pwrite", "disk write failed");
    done += static_cast<size_t>(n);
  }
  return {};
}

Status BlockBackend::flush() const {
  if (read_only_) return {};
  while (::fdatasync(fd_.get()) != 0) {
    if (errno != EINTR) return sys_error(errno, "fdatasync", "disk flush failed");
  }
  return {};
}

}  // namespace nodevisor::vmm::virtio
