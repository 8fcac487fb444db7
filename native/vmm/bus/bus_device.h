// What a device on the port-I/O or MMIO bus implements. The bus hands each access the offset
// inside the device's range; the size comes from the guest (1, 2, 4 bytes for port I/O; up to
// 8 for MMIO) and is untrusted: a device must handle any size it is given, not index by it.
//
// Threads: read/write run on whichever vCPU thread made the access; with several vCPUs a
// device is entered concurrently and locks its own state. save/restore run while paused.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sys/result.h"

namespace nodevisor::vmm {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;

  // Every device can save its guest-visible state and restore it (the factory clones VMs).
  virtual std::vector<uint8_t> save() const = 0;
  virtual Status restore(std::span<const uint8_t> state) = 0;
};

}  // namespace nodevisor::vmm
