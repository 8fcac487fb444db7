// A split virtqueue as the device sees it (virtio 1.2 §2.7), and the descriptor chains it
// hands out.
//
// Everything the driver put in guest memory is untrusted: the ring addresses and queue size
// are checked when the queue is validated; `avail.idx` may not run ahead of us by more than
// the queue size; every descriptor index is checked against the size; a chain is cut after
// `size` descriptors (so a loop ends); every buffer must lie inside guest RAM, with the
// address and length added without overflow; readable buffers must come before writable
// ones. A broken chain is reported, consumed and answered with a zero-length used entry, so a
// hostile driver cannot stall the device; a broken ring is an error the device resets on.
//
// Threads: the transport configures a queue (vCPU thread, device lock held) while it is not
// activated; after activation only the device's worker thread uses it (device lock held).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vmm/devices/virtio/virtio_spec.h"
#include "vmm/memory/guest_memory.h"
#include "sys/result.h"
#include "vmm/util/state_codec.h"

namespace nodevisor::vmm::virtio {

// One guest buffer of a chain: already checked to lie inside guest RAM.
struct GuestBuffer {
  uint64_t addr;
  uint32_t len;
};

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<GuestBuffer> readable;  // driver → device, in order
  std::vector<GuestBuffer> writable;  // device → driver, in order
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

// What `Queue::pop` took off the available ring.
struct PoppedChain {
  uint16_t head = 0;
  std::optional<DescriptorChain> chain;  // empty when the chain was malformed
  std::optional<Error> chain_error;      // why, when it was
};

class Queue {
 public:
  explicit Queue(uint16_t max_size = kMaxQueueSize) : max_size_(max_size) {}

  // Driver-written configuration (through the transport's registers).
  uint16_t max_size() const { return max_size_; }
  uint16_t size = 0;
  bool ready = false;
  uint64_t desc_table = 0;
  uint64_t avail_ring = 0;
  uint64_t used_ring = 0;

  // Checks the configuration against guest memory: size a power of two in [1, max], rings
  // aligned and entirely inside guest RAM.
  Status validate(const GuestMemory& mem) const;

  // Back to the state after a device reset.
  void reset();

  // The next available chain, nothing when the ring is empty, or an error when the ring
  // itself is broken (avail.idx too far ahead, ring unreadable).
  Result<std::optional<PoppedChain>> pop(const GuestMemory& mem);

  // Puts back the last `count` chains popped and not returned with add_used, so the next pops
  // take them again (work abandoned for a pause is redone after the resume).
  void unpop(uint16_t count) { next_avail_ = static_cast<uint16_t>(next_avail_ - count); }

  // Returns a chain to the driver with `len` bytes written into its writable buffers.
  // `head` may be any value the driver published (a refused chain is returned too).
  Status add_used(GuestMemory& mem, uint16_t head, uint32_t len);

  // False when the driver asked not to be interrupted (avail.flags NO_INTERRUPT).
  bool needs_interrupt(const GuestMemory& mem) const;

  // Number of chains popped but not yet returned (for save/restore sanity only).
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

  void save(StateWriter& out) const;
  Status restore(StateReader& in);

 private:
  Result<DescriptorChain> read_chain(const GuestMemory& mem, uint16_t head) const;

  uint16_t max_size_;
  uint16_t next_avail_ = 0;  // next avail ring slot to read (free-running, wraps at 2^16)
  uint16_t next_used_ = 0;   // next used ring slot to write (free-running)
};

// Sequential access to the readable (or writable) buffers of a chain, as one byte stream.
class ChainReader {
 public:
  ChainReader(const GuestMemory& mem, std::span<const GuestBuffer> buffers);
  uint64_t remaining() const { return remaining_; }
  // Reads exactly out.size() bytes, or fails when the chain has fewer left.
  Status read(std::span<uint8_t> out);
  Status skip(uint64_t bytes);

 private:
  const GuestMemory& mem_;
  std::span<const GuestBuffer> buffers_;
  size_t index_ = 0;
  uint64_t offset_ = 0;  // inside buffers_[index_]
  uint64_t remaining_ = 0;
};

class ChainWriter {
 public:
  ChainWriter(GuestMemory& mem, std::span<const GuestBuffer> buffers);
  uint64_t remaining() const { return remaining_; }
  uint64_t written() const { return written_; }
  // Writes exactly in.size() bytes, or fails when the chain has less room.
  Status write(std::span<const uint8_t> in);

 private:
  GuestMemory& mem_;
  std::span<const GuestBuffer> buffers_;
  size_t index_ = 0;
  uint64_t offset_ = 0;
  uint64_t remaining_ = 0;
  uint64_t written_ = 0;
};

}  // namespace nodevisor::vmm::virtio
