#include "vmm/bus/bus.h"

#include <cstring>

namespace nodevisor::vmm {

Status Bus::insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device) {
  if (size == 0 || base > UINT64_MAX - size + 1) {
    return plain_error("EINVAL", name_ + " bus: invalid device range");
  }
  const uint64_t last = base + (size - 1);
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first <= last) {
    return plain_error("EEXIST", name_ + " bus: device range overlaps another device");
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + (prev->second.size - 1) >= base) {
      return plain_error("EEXIST", name_ + " bus: device range overlaps another device");
    }
  }
  ranges_.emplace(base, Range{size, std::move(device)});
  return {};
}

BusDevice* Bus::find(uint64_t address, uint64_t length, uint64_t& offset) const {
  auto it = ranges_.upper_bound(address);
  if (it == ranges_.begin()) return nullptr;
  --it;
  offset = address - it->first;  // address >= base here
  const uint64_t size = it->second.size;
  if (offset >= size || length > size - offset) return nullptr;
  return it->second.device.get();
}

bool Bus::read(uint64_t address, std::span<uint8_t> data) const {
  uint64_t offset = 0;
  BusDevice* device = find(address, data.size(), offset);
  if (device == nullptr) {
    std::memset(data.data(), 0xff, data.size());
    return false;
  }
  device->read(offset, data);
  return true;
}

bool Bus::write(uint64_t address, std::span<const uint8_t> data) const {
  uint64_t offset = 0;
  BusDevice* device = find(address, data.size(), offset);
  if (device == nullptr) return false;
  device->write(offset, data);
  return true;
}

}  // namespace nodevisor::vmm
