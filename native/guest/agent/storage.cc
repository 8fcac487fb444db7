#include "storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <map>
#include <cstdlib>
#include <string_view>

#include "errors.h"
#include "sys/unique_fd.h"

namespace nodevisor::agent {

using nodevisor::UniqueFd;

namespace {

// Devices this agent marked read-only (BLKROSET), by mount point. The agent is
// single-threaded (agent.h), so a plain map.
std::map<std::string, std::string> g_marked_read_only;

bool device_is_read_only(const char* device) {
  int fd = ::open(device, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  int ro = 0;
  const bool ok = ::ioctl(fd, BLKROGET, &ro) == 0;
  ::close(fd);
  return ok && ro != 0;
}

void set_device_read_only(const std::string& device, bool read_only) {
  int ro = read_only ? 1 : 0;
  int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(errno, "open " + device);
  const int rc = ::ioctl(fd, BLKROSET, &ro);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail_errno(err, "BLKROSET " + device);
}

struct FlagName {
  std::string_view name;
  bool clear;  // "rw", "suid", ... remove the flag instead of setting it
  unsigned long flag;
  bool propagation;
};

// Kata's agent (mount.go flagList) and util-linux agree on these names.
constexpr FlagName kFlags[] = {
    {"ro", false, MS_RDONLY, false},          {"rw", true, MS_RDONLY, false},
    {"nosuid", false, MS_NOSUID, false},      {"suid", true, MS_NOSUID, false},
    {"nodev", false, MS_NODEV, false},        {"dev", true, MS_NODEV, false},
    {"noexec", false, MS_NOEXEC, false},      {"exec", true, MS_NOEXEC, false},
    {"sync", false, MS_SYNCHRONOUS, false},   {"async", true, MS_SYNCHRONOUS, false},
    {"dirsync", false, MS_DIRSYNC, false},    {"remount", false, MS_REMOUNT, false},
    {"mand", false, MS_MANDLOCK, false},      {"nomand", true, MS_MANDLOCK, false},
    {"noatime", false, MS_NOATIME, false},    {"atime", true, MS_NOATIME, false},
    {"nodiratime", false, MS_NODIRATIME, false}, {"diratime", true, MS_NODIRATIME, false},
    {"relatime", false, MS_RELATIME, false},  {"norelatime", true, MS_RELATIME, false},
    {"strictatime", false, MS_STRICTATIME, false}, {"nostrictatime", true, MS_STRICTATIME, false},
    {"lazytime", false, MS_LAZYTIME, false},  {"nolazytime", true, MS_LAZYTIME, false},
    {"bind", false, MS_BIND, false},          {"rbind", false, MS_BIND | MS_REC, false},
    {"silent", false, MS_SILENT, false},      {"loud", true, MS_SILENT, false},
    {"private", false, MS_PRIVATE, true},     {"rprivate", false, MS_PRIVATE | MS_REC, true},
    {"shared", false, MS_SHARED, true},       {"rshared", false, MS_SHARED | MS_REC, true},
    {"slave", false, MS_SLAVE, true},         {"rslave", false, MS_SLAVE | MS_REC, true},
    {"unbindable", false, MS_UNBINDABLE, true}, {"runbindable", false, MS_UNBINDABLE | MS_REC, true},
};

std::string trim_trailing_space(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

MountOptions split_mount_options(const std::vector<std::string>& options) {
  MountOptions out;
  for (const auto& option : options) {
    const FlagName* known = nullptr;
    for (const auto& f : kFlags) {
      if (f.name == option) known = &f;
    }
    if (known == nullptr) {
      if (option.empty()) continue;
      if (!out.data.empty()) out.data += ',';
      out.data += option;
    } else if (known->propagation) {
      out.propagation |= known->flag;
    } else if (known->clear) {
      out.flags &= ~known->flag;
    } else {
      out.flags |= known->flag;
    }
  }
  return out;
}

std::optional<std::string> find_disk_by_serial(const std::string& sys_block, const std::string& serial) {
  DIR* dir = ::opendir(sys_block.c_str());
  if (dir == nullptr) return std::nullopt;
  std::optional<std::string> found;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string path = sys_block + "/" + name + "/serial";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buffer[128];  // virtio-blk serials are at most 20 bytes
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    ::close(fd);
    if (n <= 0) continue;
    if (trim_trailing_space(std::string(buffer, static_cast<size_t>(n))) == serial) {
      found = name;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

UniqueFd open_mount_point(const std::string& path, bool create) {
  // A mount point may lie in a directory a container writes (its rootfs): a symlink planted
  // there, or a directory swapped for one between a check and the mount, must not move the
  // mount outside. So each component is opened from its parent's fd with openat2, which refuses
  // symlinks (RESOLVE_NO_SYMLINKS also refuses /proc magic links) and ".." escapes
  // (RESOLVE_BENEATH), and the caller mounts on the fd, never on the path again.
  UniqueFd dir(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) fail_errno(errno, "open /");
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;  // no O_NOFOLLOW: that would open a symlink itself (ENOTDIR)
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
  size_t start = 1;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string name = path.substr(start, end - start);
    std::string so_far = path.substr(0, end);
    for (int attempt = 0;; ++attempt) {
      int fd = static_cast<int>(::syscall(SYS_openat2, dir.get(), name.c_str(), &how, sizeof how));
      if (fd >= 0) {
        dir.reset(fd);
        break;
      }
      int err = errno;
      if (err == ENOENT && create && attempt == 0) {
        // mkdirat does not follow a symlink in the last component (EEXIST), and the reopen checks.
        if (::mkdirat(dir.get(), name.c_str(), 0755) != 0 && errno != EEXIST) fail_errno(errno, "mkdir " + so_far);
        continue;
      }
      if (err == ELOOP) fail("ELOOP", "mount point " + path + ": " + so_far + " is a symbolic link (refused)");
      if (err == ENOTDIR) fail("ENOTDIR", "mount point " + path + ": " + so_far + " is not a directory");
      fail_errno(err, "open " + so_far);
    }
    start = end + 1;
  }
  return dir;
}

std::string fd_path(const UniqueFd& fd) { return "/proc/self/fd/" + std::to_string(fd.get()); }

std::string mount_block_device(const std::string& device, const std::string& fstype,
                               const MountOptions& options, const std::string& mount_point) {
  char resolved[PATH_MAX];
  if (::realpath(device.c_str(), resolved) == nullptr) fail_errno(errno, "resolve device " + device);
  struct stat st {};
  if (::stat(resolved, &st) != 0) fail_errno(errno, "stat " + std::string(resolved));
  if (!S_ISBLK(st.st_mode)) fail("EINVAL", std::string(resolved) + " is not a block device");
  UniqueFd target = open_mount_point(mount_point, true);
  const bool mark_read_only = (options.flags & MS_RDONLY) != 0 && !device_is_read_only(resolved);
  if (mark_read_only) {
    // A disk hot-plugged read-only looks writable to Linux (virtio-blk's RO bit is read only
    // when the driver probes the slot, at boot); the host refuses its writes, but a filesystem
    // that tried (a journal replay) would then fail. Marking the block device read-only here
    // makes the guest's block layer refuse them first; storage.unmount takes the mark off, and
    // so does a mount that fails (the device must not stay read-only for its next user).
    set_device_read_only(resolved, true);
  }
  auto undo_mark = [&] {
    if (!mark_read_only) return;
    try {
      set_device_read_only(resolved, false);
    } catch (const AgentError&) {
      // The disk went away meanwhile: nothing left to restore.
    }
  };
  // /proc/self/fd/N names the directory the fd holds, whatever happened to the path since.
  if (::mount(resolved, fd_path(target).c_str(), fstype.c_str(), options.flags,
              options.data.empty() ? nullptr : options.data.c_str()) != 0) {
    int err = errno;
    undo_mark();
    fail_errno(err, "Could not mount " + std::string(resolved) + " to " + mount_point);
  }
  if (options.propagation != 0) {
    // The fd still names the directory under the new mount: reopen to reach the mount itself.
    UniqueFd mounted;
    int err = 0;
    try {
      mounted = open_mount_point(mount_point, false);
    } catch (const AgentError&) {
      err = ELOOP;  // a component was swapped meanwhile; the mount cannot be named safely
    }
    if (mounted.valid() && ::mount(nullptr, fd_path(mounted).c_str(), nullptr, options.propagation, nullptr) != 0) {
      err = errno;
    }
    if (err != 0) {
      if (mounted.valid()) ::umount2(fd_path(mounted).c_str(), MNT_DETACH);
      undo_mark();
      fail_errno(err, "set propagation of " + mount_point);
    }
  }
  if (mark_read_only) g_marked_read_only[mount_point] = resolved;
  return resolved;
}

void unmount(const std::string& mount_point) {
  UniqueFd target = open_mount_point(mount_point, false);
  struct statx stx {};
  if (::statx(target.get(), "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0) fail_errno(errno, "statx " + mount_point);
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) == 0) {
    fail("EINVAL", "umount " + mount_point + ": not a mount point");
  }
  // Our own fd keeps the mount busy, so a plain umount would always fail: detach it (as the
  // old EBUSY fallback did); the filesystem goes once the last user, this fd included, is gone.
  // UMOUNT_NOFOLLOW is not given: the one link followed is /proc/self/fd/N, to the fd's mount.
  if (::umount2(fd_path(target).c_str(), MNT_DETACH) != 0) fail_errno(errno, "umount " + mount_point);
  target.reset();
  // The device is writable again for whoever mounts it next (the mark outlives the mount).
  auto marked = g_marked_read_only.find(mount_point);
  if (marked != g_marked_read_only.end()) {
    try {
      set_device_read_only(marked->second, false);
    } catch (const AgentError&) {
      // The disk may be gone (detached); nothing left to restore.
    }
    g_marked_read_only.erase(marked);
  }
}

}  // namespace nodevisor::agent
