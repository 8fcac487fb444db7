// Shared by the fuzz targets: a small guest memory whose contents come from the fuzzer, and a
// cursor that takes typed values from the input.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "vmm/devices/virtio/queue.h"
#include "vmm/memory/guest_memory.h"

namespace nodevisor::fuzz {

// 1 MiB of guest RAM; large enough for rings and buffers, small enough that the fuzzer
// often produces addresses near and past its end.
inline constexpr uint64_t kFuzzRamBytes = 1 << 20;

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  T take() {
    T v{};
    const size_t n = size_ - pos_ < sizeof(T) ? size_ - pos_ : sizeof(T);
    std::memcpy(&v, data_ + pos_, n);
    pos_ += n;
    return v;
  }
  std::span<const uint8_t> rest() const { return {data_ + pos_, size_ - pos_}; }
  bool empty() const { return pos_ >= size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Guest memory created once per process (mapping per input would dominate the run time),
// cleared and refilled with the input's bytes for each run.
inline vmm::GuestMemory& fuzz_memory() {
  static vmm::GuestMemory mem = std::move(vmm::GuestMemory::create(kFuzzRamBytes)).value();
  return mem;
}

inline void fill_memory(vmm::GuestMemory& mem, std::span<const uint8_t> bytes, uint64_t at) {
  (void)mem.fill_zero(0, kFuzzRamBytes);
  if (at >= kFuzzRamBytes) return;
  const size_t n = bytes.size() < kFuzzRamBytes - at ? bytes.size() : kFuzzRamBytes - at;
  (void)mem.write(at, bytes.subspan(0, n));
}

// A descriptor chain of up to 8 buffers, each an (address, length, writable) triple from the
// input; readable buffers come first, as virtio requires.
inline vmm::virtio::DescriptorChain take_chain(Input& in, const vmm::GuestMemory& mem) {
  vmm::virtio::DescriptorChain chain;
  const uint8_t count = in.take<uint8_t>() % 9;
  bool seen_writable = false;
  for (uint8_t i = 0; i < count; i++) {
    const uint64_t addr = in.take<uint32_t>() % (kFuzzRamBytes + 0x100);
    const uint32_t len = in.take<uint16_t>() * (in.take<uint8_t>() % 4 + 1);
    const bool writable = seen_writable || (in.take<uint8_t>() & 1);
    // Queue::pop only hands out chains whose buffers lie in RAM: keep that contract.
    if (len != 0 && !mem.contains(addr, len)) continue;
    (writable ? chain.writable : chain.readable).push_back({addr, len});
    (writable ? chain.writable_bytes : chain.readable_bytes) += len;
    seen_writable = writable;
  }
  return chain;
}

}  // namespace nodevisor::fuzz
