// Mounting disks for containers: Kata's split of mount options into flags and data, finding a
// hot-plugged disk by its virtio-blk serial, mount and unmount. Main loop thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sys/unique_fd.h"

namespace nodevisor::agent {

struct MountOptions {
  unsigned long flags = 0;             // MS_* flags for the mount itself
  unsigned long propagation = 0;       // MS_PRIVATE / MS_SHARED / ... applied by a second mount
  std::string data;                    // everything else, comma-joined, for the filesystem
};

// Names listed in docs/protocol.md become flags ("rw", "suid", ... clear them); the rest is data.
MountOptions split_mount_options(const std::vector<std::string>& options);

// The name of the block device under `sys_block` (normally /sys/block) whose `serial` file holds
// `serial` (trailing whitespace ignored), or nullopt when none does yet.
std::optional<std::string> find_disk_by_serial(const std::string& sys_block, const std::string& serial);

// Resolves symlinks in `device` (as Kata does), checks it is a block device, creates `mount_point`
// (0755, with parents) and mounts. `mount_point` is resolved without following any symlink
// (ELOOP) and the mount goes on the directory found, not on the path again. A failed mount
// leaves nothing behind (no mount, no read-only mark). Throws AgentError. Returns the resolved
// device path.
std::string mount_block_device(const std::string& device, const std::string& fstype,
                               const MountOptions& options, const std::string& mount_point);

// Detaches the mount at `mount_point`, resolved like mount_block_device's (no symlinks).
void unmount(const std::string& mount_point);

// Opens `path` (absolute, normal) as an O_PATH directory fd, component by component, refusing
// symlinks (ELOOP) and non-directories (ENOTDIR); with `create`, missing components are made
// (0755).
nodevisor::UniqueFd open_mount_point(const std::string& path, bool create);

}  // namespace nodevisor::agent
