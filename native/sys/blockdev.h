// What a host path is, as a disk for a VM: a block device, a regular file (an image) or
// something else, with its size, logical block size, read-only state and whether it is a
// device-mapper device (the devicemapper snapshotter hands rootfs over as /dev/mapper/...).
//
// Runs on: any thread; the addon runs it on a libuv worker thread because the ioctls and
// stat calls can wait on a slow or busy device.
#pragma once

#include <cstdint>
#include <string>

#include "sys/result.h"

namespace nodevisor::sys {

enum class BlockKind { block, file, other };

struct BlockDeviceInfo {
  BlockKind kind = BlockKind::other;
  // Device number of the block device itself; 0 for files and everything else (a file's
  // st_dev names the filesystem holding it, which is not what a caller of inspect means).
  unsigned major = 0;
  unsigned minor = 0;
  // Block device: BLKGETSIZE64. Regular file: st_size. Other: 0.
  std::uint64_t size_bytes = 0;
  // Block device: BLKSSZGET. Regular file: 512 (what a virtio-blk disk backed by a file
  // advertises). Other: 0.
  unsigned logical_block_size = 0;
  // Block device: BLKROGET (the kernel's read-only flag, set by `losetup -r`, `blockdev
  // --setro`, or a write-protected medium).
  // Anything else: true when this process may not write it: faccessat(W_OK, AT_EACCESS)
  // fails (this includes EROFS and immutable files) or its filesystem is mounted read-only
  // (fstatvfs ST_RDONLY). Root passes W_OK on a 0444 file, so such a file is writable.
  bool read_only = false;
  // /sys/dev/block/<major>:<minor>/dm exists.
  bool device_mapper = false;
};

const char* to_string(BlockKind kind);

// Follows symlinks (/dev/mapper/x -> /dev/dm-0). Errors carry errno, syscall and path
// (ENOENT for a missing path).
Result<BlockDeviceInfo> inspect_block_device(const std::string& path);

}  // namespace nodevisor::sys
