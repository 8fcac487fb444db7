#include "sys/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <thread>

namespace nodevisor::sys {

namespace {

// Older libc headers may lack them; the values are kernel ABI.
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

Error not_a_netns(const std::string& path) {
  return Error::check(EINVAL, path, "not a network namespace: " + path);
}

// A name becomes one path component under `dir`: no separators, no dot entries.
bool valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 200 && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

Result<std::string> random_name() {
  std::array<unsigned char, 16> bytes{};
  std::size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("getrandom", "", "cannot draw a network namespace name");
    }
    got += static_cast<std::size_t>(n);
  }
  std::string name = kNetnsNamePrefix;
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char b : bytes) {
    name += kHex[b >> 4];
    name += kHex[b & 0xf];
  }
  return name;
}

// Runs on: the dedicated thread started by create_netns, and nowhere else. unshare() moves
// this thread (only) into a fresh network namespace; the bind mount then pins that
// namespace to `target`, so it lives on after the thread exits. The thread is never
// reused, so it need not switch back.
Status unshare_and_bind(const std::string& target) {
  // Signals for the process go to threads that can take them; this one is busy in syscalls
  // for a moment and has nothing to do with them.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);

  if (::unshare(CLONE_NEWNET) != 0) {
    return Error::from_errno("unshare", target, "cannot create a network namespace");
  }
  // This thread's own ns file. /proc/thread-self rather than /proc/self/task/<gettid()>:
  // the same file, but resolved by procfs itself, so it stays right when /proc belongs to
  // another pid namespace than ours (a container given the host's /proc).
  const char* source = "/proc/thread-self/ns/net";
  if (::mount(source, target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return Error::from_errno("mount", target,
                                "cannot bind-mount the new network namespace on " + target);
  }
  return Ok{};
}

// Runs unshare_and_bind on a new thread and waits for it. The caller's thread (a libuv
// worker, which later runs other JS work such as fs calls) must not change namespace.
Status unshare_and_bind_on_own_thread(const std::string& target) {
  Status status = Ok{};
  try {
    std::thread worker([&] { status = unshare_and_bind(target); });
    worker.join();
  } catch (const std::system_error& e) {
    return Error::with_errno(e.code().value(), "pthread_create", target,
                                "cannot start the thread that creates the network namespace");
  }
  return status;
}

// Kernel thread id of the caller, for NetnsSwitch's same-thread check.
pid_t this_tid() { return ::gettid(); }

}  // namespace

Result<std::string> create_netns(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.front() != '/') {
    return Error::check(EINVAL, dir, "network namespace directory must be an absolute path: " + dir);
  }
  std::string chosen = name;
  if (chosen.empty()) {
    auto drawn = random_name();
    if (!drawn) return drawn.error();
    chosen = std::move(drawn).value();
  } else if (!valid_name(name)) {
    return Error::check(EINVAL, name, "invalid network namespace name: " + name);
  }

  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error::from_errno("mkdir", dir, "cannot create directory " + dir);
  }
  std::string path = dir;
  if (path.back() != '/') path += '/';
  path += chosen;

  // The mount point: an empty file. O_EXCL so two creators never share one path.
  {
    UniqueFd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444));
    if (!file) return Error::from_errno("open", path, "cannot create " + path);
  }

  Status bound = unshare_and_bind_on_own_thread(path);
  if (!bound) {
    // Leave nothing behind. The mount may or may not exist; detach is lazy so a process
    // that already entered keeps working.
    int saved = errno;
    ::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    ::unlink(path.c_str());
    errno = saved;
    return bound.error();
  }
  return path;
}

Result<bool> delete_netns(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return Error::from_errno("lstat", path, "cannot delete network namespace " + path);
  }
  auto ns = open_netns(path);
  if (!ns) return ns.error();
  ns.value().reset();  // our own fd must not keep the namespace alive past the unmount
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
    // EINVAL here means the path is a namespace but not a mount point (/proc/<pid>/ns/net).
    return Error::from_errno("umount2", path, "cannot unmount network namespace " + path);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Error::from_errno("unlink", path, "cannot remove " + path);
  }
  return true;
}

Result<NsIdentity> path_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Error::from_errno("stat", path, "cannot stat " + path);
  }
  return NsIdentity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

Result<NsIdentity> current_thread_netns_identity() {
  // thread-self, not self: /proc/self/ns/net is the thread group leader's namespace, which
  // differs from the caller's while the caller is inside a NetnsSwitch.
  return path_identity("/proc/thread-self/ns/net");
}

Result<UniqueFd> open_netns(const std::string& path) {
  // O_PATH first: opening an arbitrary path for reading can block (a FIFO) or act (some
  // character devices). Only a file already known to be on nsfs/procfs is opened for real.
  UniqueFd probe(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!probe) return Error::from_errno("open", path, "cannot open " + path);
  struct statfs fs {};
  if (::fstatfs(probe.get(), &fs) != 0) {
    return Error::from_errno("fstatfs", path, "cannot inspect " + path);
  }
  const bool nsfs = static_cast<unsigned long>(fs.f_type) == NSFS_MAGIC;
  const bool procfs = static_cast<unsigned long>(fs.f_type) == PROC_SUPER_MAGIC;
  if (!nsfs && !procfs) return not_a_netns(path);

  std::string reopen = "/proc/self/fd/" + std::to_string(probe.get());
  UniqueFd ns(::open(reopen.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return Error::from_errno("open", path, "cannot open " + path);
  int type = ::ioctl(ns.get(), NS_GET_NSTYPE);
  if (type < 0) {
    if (errno == ENOTTY && nsfs) return ns;  // kernel 3.19-4.10: nsfs without the ioctl
    return not_a_netns(path);
  }
  if (type != CLONE_NEWNET) return not_a_netns(path);
  return ns;
}

Result<NsIdentity> check_netns(const std::string& path) {
  auto ns = open_netns(path);
  if (!ns) return ns.error();
  struct stat st {};
  if (::fstat(ns.value().get(), &st) != 0) {
    return Error::from_errno("fstat", path, "cannot stat " + path);
  }
  return NsIdentity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

Result<NetnsSwitch> NetnsSwitch::enter(const std::string& path) {
  auto target = open_netns(path);
  if (!target) return target.error();
  UniqueFd previous(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!previous) {
    return Error::from_errno("open", "/proc/thread-self/ns/net",
                                "cannot open the current network namespace");
  }
  if (::setns(target.value().get(), CLONE_NEWNET) != 0) {
    return Error::from_errno("setns", path, "cannot enter network namespace " + path);
  }
  return NetnsSwitch(std::move(previous), this_tid());
}

Status NetnsSwitch::restore() {
  if (!previous_) return Ok{};
  if (this_tid() != tid_) {
    return Error::check(EPERM, "", "network namespace switch restored on another thread");
  }
  if (::setns(previous_.get(), CLONE_NEWNET) != 0) {
    return Error::from_errno("setns", "/proc/thread-self/ns/net",
                                "cannot switch back to the previous network namespace");
  }
  previous_.reset();
  return Ok{};
}

NetnsSwitch::~NetnsSwitch() {
  Status back = restore();
  if (!back) {
    std::fprintf(stderr, "nodevisor: fatal: %s (errno %d); aborting rather than running on in a "
                 "foreign network namespace\n", back.error().message.c_str(), back.error().errnum);
    std::abort();
  }
}

}  // namespace nodevisor::sys
