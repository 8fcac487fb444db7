// What a virtio-blk slot reads and writes: an open regular file (an image) or block device.
// Offsets and lengths come from checked requests (block_request.cc); this layer only loops
// over short reads/writes and EINTR.
//
// Threads: opened on a libuv worker (attach) or the VM-building thread; used by the block
// device's worker thread under the device mutex.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm::virtio {

class BlockBackend {
 public:
  // Opens `path` read-write, or read-only when `read_only` (or when the file is read-only
  // and `read_only` was asked). Regular files and block devices only.
  static Result<BlockBackend> open(const std::string& path, bool read_only);

  const std::string& path() const { return path_; }
  uint64_t size_bytes() const { return size_; }
  bool read_only() const { return read_only_; }
  // Device and inode, to refuse attaching one writable disk twice.
  uint64_t dev() const { return dev_; }
  uint64_t ino() const { return ino_; }

  // Reads or writes exactly `data.size()` bytes at `offset`; a short transfer is an error.
  Status read_at(uint64_t offset, std::span<uint8_t> data) const;
  Status write_at(uint64_t offset, std::span<const uint8_t> data) const;
  Status flush() const;

 private:
  UniqueFd fd_;
  std::string path_;
  uint64_t size_ = 0;
  uint64_t dev_ = 0;
  uint64_t ino_ = 0;
  bool read_only_ = false;
};

}  // namespace nodevisor::vmm::virtio
