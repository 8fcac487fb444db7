#include "vmm/devices/virtio/testing/mock_driver.h"

#include <atomic>
#include <chrono>
#include <thread>

namespace nodevisor::vmm::virtio::testing {

namespace {
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
}  // namespace

MockQueue::MockQueue(GuestMemory& mem, uint64_t base, uint16_t size) : mem_(mem), size_(size) {
  desc_ = align_up(base, kDescTableAlign);
  avail_ = align_up(desc_ + desc_table_size(size), kAvailRingAlign);
  used_ = align_up(avail_ + avail_ring_size(size), 4096);
  end_ = align_up(used_ + used_ring_size(size), 4096);
  (void)mem_.fill_zero(desc_, end_ - desc_);
}

void MockQueue::write_descriptor(uint16_t index, const Descriptor& d) {
  (void)mem_.write_obj(desc_ + desc_table_size(index), d);
}

uint16_t MockQueue::add_chain(const std::vector<MockBuffer>& buffers, uint16_t first) {
  for (size_t i = 0; i < buffers.size(); i++) {
    const bool last = i + 1 == buffers.size();
    const uint16_t index = static_cast<uint16_t>((first + i) % size_);
    Descriptor d{buffers[i].addr, buffers[i].len,
                 static_cast<uint16_t>((buffers[i].writable ? kDescFlagWrite : 0) | (last ? 0 : kDescFlagNext)),
                 static_cast<uint16_t>((first + i + 1) % size_)};
    write_descriptor(index, d);
  }
  publish(first);
  return first;
}

void MockQueue::publish(uint16_t head) {
  (void)mem_.write_obj(avail_ + kRingEntriesOffset + 2ull * (avail_idx_ % size_), head);
  std::atomic_thread_fence(std::memory_order_release);
  avail_idx_++;
  (void)mem_.write_obj(avail_ + kRingIdxOffset, avail_idx_);
}

void MockQueue::set_avail_idx(uint16_t idx) {
  avail_idx_ = idx;
  (void)mem_.write_obj(avail_ + kRingIdxOffset, idx);
}

void MockQueue::set_no_interrupt(bool on) { (void)mem_.write_obj(avail_, static_cast<uint16_t>(on ? 1 : 0)); }

uint16_t MockQueue::used_idx() const {
  auto v = mem_.read_obj<uint16_t>(used_ + kRingIdxOffset);
  std::atomic_thread_fence(std::memory_order_acquire);
  return v ? v.value() : 0;
}

UsedElement MockQueue::used_element(uint16_t slot) const {
  auto v = mem_.read_obj<UsedElement>(used_ + kRingEntriesOffset + sizeof(UsedElement) * (slot % size_));
  return v ? v.value() : UsedElement{0xffffffff, 0xffffffff};
}

bool MockQueue::wait_used(uint16_t idx, int timeout_ms) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (used_idx() == idx) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return used_idx() == idx;
}

}  // namespace nodevisor::vmm::virtio::testing
