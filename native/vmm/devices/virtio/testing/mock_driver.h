// The driver's side of a split virtqueue, in guest memory, for device tests and fuzzing
// (rust-vmm vm-virtio's mock.rs is the model): lays out the rings, builds descriptor chains
// (well-formed or deliberately broken) and reads back what the device returned.
//
// Threads: the test's thread; the device under test reads and writes the same guest memory
// from its worker thread, ordered by the ring indexes as with a real driver.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "vmm/devices/virtio/virtio_spec.h"
#include "vmm/memory/guest_memory.h"

namespace nodevisor::vmm::virtio::testing {

struct MockBuffer {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

class MockQueue {
 public:
  // Places the rings at `base` (16-byte aligned) for a queue of `size` entries.
  MockQueue(GuestMemory& mem, uint64_t base, uint16_t size);

  uint16_t size() const { return size_; }
  uint64_t desc_table() const { return desc_; }
  uint64_t avail_ring() const { return avail_; }
  uint64_t used_ring() const { return used_; }
  // First guest address after the rings, for data buffers.
  uint64_t end() const { return end_; }

  // Writes descriptors for `buffers` from descriptor `first` on, chained with NEXT, and
  // publishes the chain on the avail ring. Returns the head index.
  uint16_t add_chain(const std::vector<MockBuffer>& buffers, uint16_t first = 0);
  // Writes one raw descriptor (for broken chains).
  void write_descriptor(uint16_t index, const Descriptor& d);
  // Publishes `head` on the avail ring without writing descriptors.
  void publish(uint16_t head);
  // Sets avail.idx directly (for a driver that lies).
  void set_avail_idx(uint16_t idx);
  void set_no_interrupt(bool on);

  uint16_t used_idx() const;
  UsedElement used_element(uint16_t slot) const;
  // Waits (polling, up to `timeout_ms`) until used.idx reaches `idx`.
  bool wait_used(uint16_t idx, int timeout_ms = 5000) const;

 private:
  GuestMemory& mem_;
  uint16_t size_;
  uint64_t desc_, avail_, used_, end_;
  uint16_t avail_idx_ = 0;
};

}  // namespace nodevisor::vmm::virtio::testing
