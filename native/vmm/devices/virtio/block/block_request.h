// One virtio-blk request (virtio 1.2 §5.2.6): a 16-byte header the driver wrote (type,
// sector), data buffers, and a one-byte status the device writes last.
//
// Every field is the guest's: the type is checked against the supported ones; data lengths
// must be whole 512-byte sectors; `sector * 512 + length` is computed without overflow and
// must stay within the disk; writes to a read-only disk fail. A malformed request gets an
// error status (IOERR or UNSUPP), never a crash. Data moves through a bounded bounce buffer
// in chunks, so the size of a request never decides how much host memory is allocated.
//
// Threads: the block device's worker thread, under the device mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/devices/virtio/block/block_backend.h"
#include "vmm/devices/virtio/queue.h"
#include "vmm/memory/guest_memory.h"

namespace nodevisor::vmm::virtio {

inline constexpr uint32_t kBlockTypeIn = 0;
inline constexpr uint32_t kBlockTypeOut = 1;
inline constexpr uint32_t kBlockTypeFlush = 4;
inline constexpr uint32_t kBlockTypeGetId = 8;

inline constexpr uint8_t kBlockStatusOk = 0;
inline constexpr uint8_t kBlockStatusIoErr = 1;
inline constexpr uint8_t kBlockStatusUnsupported = 2;

inline constexpr uint64_t kSectorSize = 512;
inline constexpr size_t kBlockIdBytes = 20;
inline constexpr size_t kBounceBufferBytes = 64 * 1024;

struct BlockRequestOutcome {
  uint8_t status = kBlockStatusIoErr;
  // Bytes written into the driver's writable buffers, status byte included (used.len).
  uint32_t used_len = 0;
};

// Executes the request in `chain` against `backend` (nullptr: an empty hot-plug slot, which
// has capacity 0) and writes the status byte. `bounce` is the device's scratch buffer.
// `cancel` (may be null) is polled between chunks: a request in progress when the VM is torn
// down ends with IOERR at the next chunk instead of running to its end.
BlockRequestOutcome handle_block_request(GuestMemory& mem, const DescriptorChain& chain, const BlockBackend* backend,
                                         const std::string& serial, std::vector<uint8_t>& bounce,
                                         const std::atomic<bool>* cancel = nullptr);

}  // namespace nodevisor::vmm::virtio
