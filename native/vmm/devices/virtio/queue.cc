#include "vmm/devices/virtio/queue.h"

#include <atomic>
#include <string>

namespace nodevisor::vmm::virtio {

namespace {

constexpr uint32_t kQueueStateTag = state_tag("VQUE");
constexpr uint32_t kQueueStateVersion = 1;
constexpr uint16_t kAvailFlagNoInterrupt = 1;

Error queue_error(std::string message) { return plain_error("EVIRTQUEUE", std::move(message)); }

bool aligned(uint64_t address, uint64_t alignment) { return (address & (alignment - 1)) == 0; }

}  // namespace

Status Queue::validate(const GuestMemory& mem) const {
  if (size == 0 || size > max_size_ || (size & (size - 1)) != 0) {
    return queue_error("queue size " + std::to_string(size) + " is not a power of two from 1 to " +
                       std::to_string(max_size_));
  }
  if (!aligned(desc_table, kDescTableAlign) || !aligned(avail_ring, kAvailRingAlign) ||
      !aligned(used_ring, kUsedRingAlign)) {
    return queue_error("queue rings are not aligned");
  }
  if (!mem.contains(desc_table, desc_table_size(size)) || !mem.contains(avail_ring, avail_ring_size(size)) ||
      !mem.contains(used_ring, used_ring_size(size))) {
    return queue_error("queue rings are not inside guest memory");
  }
  return {};
}

void Queue::reset() {
  size = 0;
  ready = false;
  desc_table = avail_ring = used_ring = 0;
  next_avail_ = next_used_ = 0;
}

Result<DescriptorChain> Queue::read_chain(const GuestMemory& mem, uint16_t head) const {
  DescriptorChain chain;
  chain.head = head;
  uint16_t index = head;
  // At most `size` descriptors: a longer chain necessarily revisits one (a loop).
  for (uint32_t ttl = size; ttl > 0; ttl--) {
    if (index >= size) return queue_error("descriptor index " + std::to_string(index) + " is out of range");
    // desc_table + 16 * index stays inside the validated table, so it cannot overflow.
    auto desc = mem.read_obj<Descriptor>(desc_table + desc_table_size(index));
    if (!desc) return desc.error();
    const Descriptor d = desc.value();
    if (d.flags & kDescFlagIndirect) return queue_error("indirect descriptors were not negotiated");
    if (d.len != 0 && !mem.contains(d.addr, d.len)) {
      return queue_error("descriptor buffer is not inside guest memory");
    }
    if (d.flags & kDescFlagWrite) {
      chain.writable.push_back({d.addr, d.len});
      chain.writable_bytes += d.len;  // at most 2^16 * 2^32: no overflow in 64 bits
    } else {
      if (!chain.writable.empty()) return queue_error("a readable descriptor follows a writable one");
      chain.readable.push_back({d.addr, d.len});
      chain.readable_bytes += d.len;
    }
    if (!(d.flags & kDescFlagNext)) return chain;
    index = d.next;
  }
  return queue_error("descriptor chain is longer than the queue (a loop)");
}

Result<std::optional<PoppedChain>> Queue::pop(const GuestMemory& mem) {
  auto avail_idx = mem.read_obj<uint16_t>(avail_ring + kRingIdxOffset);
  if (!avail_idx) return avail_idx.error();
  // Read ring entries only after seeing the index that publishes them.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint16_t pending = static_cast<uint16_t>(avail_idx.value() - next_avail_);
  if (pending == 0) return std::optional<PoppedChain>{};
  if (pending > size) {
    return queue_error("avail.idx ran " + std::to_string(pending) + " entries ahead of a queue of " +
                       std::to_string(size));
  }
  const uint64_t slot = next_avail_ % size;
  auto head = mem.read_obj<uint16_t>(avail_ring + kRingEntriesOffset + 2 * slot);
  if (!head) return head.error();
  next_avail_++;

  PoppedChain popped;
  popped.head = head.value();
  auto chain = read_chain(mem, head.value());
  if (chain) {
    popped.chain = std::move(chain).value();
  } else {
    popped.chain_error = chain.error();
  }
  return std::optional<PoppedChain>{std::move(popped)};
}

Status Queue::add_used(GuestMemory& mem, uint16_t head, uint32_t len) {
  // `head` is echoed back as the driver gave it, even an out-of-range one (its chain was
  // refused): the used slot is ours to choose, so nothing here indexes by it.
  const uint64_t slot = next_used_ % size;
  NV_TRY(mem.write_obj(used_ring + kRingEntriesOffset + sizeof(UsedElement) * slot, UsedElement{head, len}));
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  next_used_++;
  return mem.write_obj(used_ring + kRingIdxOffset, next_used_);
}

bool Queue::needs_interrupt(const GuestMemory& mem) const {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  auto flags = mem.read_obj<uint16_t>(avail_ring);
  return !flags || (flags.value() & kAvailFlagNoInterrupt) == 0;
}

void Queue::save(StateWriter& out) const {
  out.put(kQueueStateTag);
  out.put(kQueueStateVersion);
  out.put(max_size_);
  out.put(size);
  out.put(static_cast<uint8_t>(ready));
  out.put(desc_table);
  out.put(avail_ring);
  out.put(used_ring);
  out.put(next_avail_);
  out.put(next_used_);
}

Status Queue::restore(StateReader& in) {
  uint32_t tag = 0, version = 0;
  uint16_t max_size = 0;
  uint8_t is_ready = 0;
  if (!in.get(tag) || tag != kQueueStateTag || !in.get(version) || version != kQueueStateVersion ||
      !in.get(max_size) || max_size != max_size_ || !in.get(size) || !in.get(is_ready) || !in.get(desc_table) ||
      !in.get(avail_ring) || !in.get(used_ring) || !in.get(next_avail_) || !in.get(next_used_) || size > max_size_) {
    return truncated_state("virtqueue");
  }
  ready = is_ready != 0;
  return {};
}

namespace {

// Moves a chain cursor (buffer `index`, `offset` inside it) over `bytes` bytes, calling
// `each(guest_address, done, take)` for every non-empty piece. The caller checked that the
// chain holds `bytes` more bytes.
template <typename Each>
Status walk_chain(std::span<const GuestBuffer> buffers, size_t& index, uint64_t& offset, uint64_t bytes, Each each) {
  uint64_t done = 0;
  while (done < bytes) {
    const GuestBuffer& b = buffers[index];
    const uint64_t take = std::min<uint64_t>(b.len - offset, bytes - done);
    if (take > 0) NV_TRY(each(b.addr + offset, done, take));
    done += take;
    offset += take;
    if (offset == b.len) {
      index++;
      offset = 0;
    }
  }
  return {};
}

}  // namespace

ChainReader::ChainReader(const GuestMemory& mem, std::span<const GuestBuffer> buffers)
    : mem_(mem), buffers_(buffers) {
  for (const auto& b : buffers_) remaining_ += b.len;
}

Status ChainReader::read(std::span<uint8_t> out) {
  if (out.size() > remaining_) return queue_error("request is shorter than its header or data");
  NV_TRY(walk_chain(buffers_, index_, offset_, out.size(), [&](uint64_t addr, uint64_t done, uint64_t take) {
    return mem_.read(addr, out.subspan(done, take));
  }));
  remaining_ -= out.size();
  return {};
}

Status ChainReader::skip(uint64_t bytes) {
  if (bytes > remaining_) return queue_error("request is shorter than expected");
  NV_TRY(walk_chain(buffers_, index_, offset_, bytes, [](uint64_t, uint64_t, uint64_t) { return Status{}; }));
  remaining_ -= bytes;
  return {};
}

ChainWriter::ChainWriter(GuestMemory& mem, std::span<const GuestBuffer> buffers) : mem_(mem), buffers_(buffers) {
  for (const auto& b : buffers_) remaining_ += b.len;
}

Status ChainWriter::write(std::span<const uint8_t> in) {
  if (in.size() > remaining_) return queue_error("the driver's buffers are too small for the reply");
  NV_TRY(walk_chain(buffers_, index_, offset_, in.size(), [&](uint64_t addr, uint64_t done, uint64_t take) {
    return mem_.write(addr, in.subspan(done, take));
  }));
  remaining_ -= in.size();
  written_ += in.size();
  return {};
}

}  // namespace nodevisor::vmm::virtio
