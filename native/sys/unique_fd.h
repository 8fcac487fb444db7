// UniqueFd: the one owner of a file descriptor; closes it when destroyed. Shared by every
// native part (native/sys, native/vmm, the guest agent), so there is one definition of how an
// fd is released.
//
// Runs on: any thread. Every fd lives in one of these, so an early return on an error path
// cannot leak a descriptor (the netns and VM cycle tests count them).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace nodevisor {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }

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

}  // namespace nodevisor
