// unique_fd: the one owner of a file descriptor; closes it when destroyed.
//
// Runs on: any thread. Every fd in native/sys lives in one of these, so an early return on
// an error path cannot leak a descriptor (the 200-cycle netns test counts them).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace nodevisor::sys {

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  int release() {
    return std::exchange(fd_, -1);
  }

  // Closes the owned fd (if any) and takes `fd`. close() is not retried on EINTR: on Linux
  // the fd is released even then, and a retry could close a descriptor another thread just
  // got. errno is preserved so callers can build an error after a cleanup.
  void reset(int fd = -1) {
    int old = std::exchange(fd_, fd);
    if (old >= 0) {
      int saved = errno;
      ::close(old);
      errno = saved;
    }
  }

 private:
  int fd_ = -1;
};

}  // namespace nodevisor::sys
