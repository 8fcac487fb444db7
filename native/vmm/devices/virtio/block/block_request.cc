#include "vmm/devices/virtio/block/block_request.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace nodevisor::vmm::virtio {

namespace {

struct RequestHeader {  // as the driver writes it, little-endian
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

// The last writable byte of the chain, where the status goes; false when there is none.
bool status_address(const DescriptorChain& chain, uint64_t& address) {
  for (auto it = chain.writable.rbegin(); it != chain.writable.rend(); ++it) {
    if (it->len > 0) {
      address = it->addr + it->len - 1;  // inside guest RAM: checked when the chain was read
      return true;
    }
  }
  return false;
}

// The byte range [offset, offset + length) of the disk for `sector`, or false when it
// overflows or does not fit in `disk_bytes`.
bool disk_range(uint64_t sector, uint64_t length, uint64_t disk_bytes, uint64_t& offset) {
  if (sector > std::numeric_limits<uint64_t>::max() / kSectorSize) return false;
  offset = sector * kSectorSize;
  return offset <= disk_bytes && length <= disk_bytes - offset;
}

bool cancelled(const std::atomic<bool>* cancel) { return cancel != nullptr && cancel->load(std::memory_order_relaxed); }

uint8_t read_from_disk(GuestMemory& mem, const DescriptorChain& chain, const BlockBackend& disk, uint64_t offset,
                       uint64_t length, std::vector<uint8_t>& bounce, uint32_t& written,
                       const std::atomic<bool>* cancel) {
  ChainWriter out(mem, chain.writable);
  uint64_t done = 0;
  while (done < length) {
    if (cancelled(cancel)) return kBlockStatusIoErr;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bounce.size(), length - done));
    std::span<uint8_t> chunk(bounce.data(), n);
    if (!disk.read_at(offset + done, chunk).ok()) return kBlockStatusIoErr;
    if (!out.write(chunk).ok()) return kBlockStatusIoErr;
    done += n;
    written = static_cast<uint32_t>(std::min<uint64_t>(out.written(), std::numeric_limits<uint32_t>::max()));
  }
  return kBlockStatusOk;
}

uint8_t write_to_disk(GuestMemory& mem, const DescriptorChain& chain, const BlockBackend& disk, uint64_t offset,
                      uint64_t length, std::vector<uint8_t>& bounce, const std::atomic<bool>* cancel) {
  if (disk.read_only()) return kBlockStatusIoErr;
  ChainReader in(mem, chain.readable);
  if (!in.skip(sizeof(RequestHeader)).ok()) return kBlockStatusIoErr;
  uint64_t done = 0;
  while (done < length) {
    if (cancelled(cancel)) return kBlockStatusIoErr;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bounce.size(), length - done));
    std::span<uint8_t> chunk(bounce.data(), n);
    if (!in.read(chunk).ok()) return kBlockStatusIoErr;
    if (!disk.write_at(offset + done, chunk).ok()) return kBlockStatusIoErr;
    done += n;
  }
  return kBlockStatusOk;
}

}  // namespace

BlockRequestOutcome handle_block_request(GuestMemory& mem, const DescriptorChain& chain, const BlockBackend* backend,
                                         const std::string& serial, std::vector<uint8_t>& bounce,
                                         const std::atomic<bool>* cancel) {
  BlockRequestOutcome outcome;
  uint64_t status_at = 0;
  if (!status_address(chain, status_at)) return outcome;  // nowhere to put a status: used.len 0
  if (bounce.size() < kSectorSize) bounce.resize(kBounceBufferBytes);

  // Data the device may write: everything writable except the status byte.
  const uint64_t writable_data = chain.writable_bytes - 1;
  uint32_t data_written = 0;

  RequestHeader header{};
  ChainReader reader(mem, chain.readable);
  if (!reader.read(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&header), sizeof header)).ok()) {
    outcome.status = kBlockStatusIoErr;
  } else {
    const uint64_t disk_bytes = backend ? backend->size_bytes() : 0;
    uint64_t offset = 0;
    switch (header.type) {
      case kBlockTypeIn:
        if (writable_data % kSectorSize != 0 || !disk_range(header.sector, writable_data, disk_bytes, offset) ||
            backend == nullptr) {
          outcome.status = kBlockStatusIoErr;
        } else {
          outcome.status = read_from_disk(mem, chain, *backend, offset, writable_data, bounce, data_written, cancel);
        }
        break;
      case kBlockTypeOut: {
        const uint64_t length = reader.remaining();
        if (length % kSectorSize != 0 || !disk_range(header.sector, length, disk_bytes, offset) ||
            backend == nullptr) {
          outcome.status = kBlockStatusIoErr;
        } else {
          outcome.status = write_to_disk(mem, chain, *backend, offset, length, bounce, cancel);
        }
        break;
      }
      case kBlockTypeFlush:
        outcome.status = backend == nullptr || backend->flush().ok() ? kBlockStatusOk : kBlockStatusIoErr;
        break;
      case kBlockTypeGetId: {
        uint8_t id[kBlockIdBytes] = {};
        std::memcpy(id, serial.data(), std::min(serial.size(), kBlockIdBytes));
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlockIdBytes, writable_data));
        ChainWriter out(mem, chain.writable);
        if (out.write(std::span<const uint8_t>(id, n)).ok()) {
          data_written = static_cast<uint32_t>(n);
          outcome.status = kBlockStatusOk;
        }
        break;
      }
      default:
        outcome.status = kBlockStatusUnsupported;
        break;
    }
  }

  if (!mem.write_obj(status_at, outcome.status).ok()) return BlockRequestOutcome{kBlockStatusIoErr, 0};
  // The status byte is the last writable byte; data never reaches it (writable_data excludes it).
  outcome.used_len = data_written + 1;
  return outcome;
}

}  // namespace nodevisor::vmm::virtio
