// A bounded FIFO of bytes: the console's buffers between the guest's virtqueues and the host.
// Not thread-safe; its owner's mutex guards it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace nodevisor::vmm::virtio {

class ByteQueue {
 public:
  explicit ByteQueue(size_t capacity) : capacity_(capacity) {}

  size_t size() const { return data_.size() - head_; }
  size_t capacity() const { return capacity_; }
  size_t room() const { return capacity_ - std::min(capacity_, size()); }
  bool empty() const { return size() == 0; }

  // Appends as much of `in` as fits; returns how much was taken.
  size_t push(std::span<const uint8_t> in) {
    const size_t n = std::min(in.size(), room());
    data_.insert(data_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
    return n;
  }
  // The first `n` bytes (n <= size()).
  std::span<const uint8_t> front(size_t n) const { return {data_.data() + head_, std::min(n, size())}; }
  void pop(size_t n) {
    head_ += std::min(n, size());
    // Compact once the consumed prefix dominates, so memory stays bounded by the capacity.
    if (head_ > 4096 && head_ * 2 > data_.size()) {
      data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    data_.clear();
    head_ = 0;
  }

 private:
  size_t capacity_;
  std::vector<uint8_t> data_;
  size_t head_ = 0;
};

}  // namespace nodevisor::vmm::virtio
