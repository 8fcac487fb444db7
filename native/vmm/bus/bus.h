// An address space of devices: ordered, non-overlapping [base, base + size) ranges, used once
// for port I/O and once for MMIO. Ranges are fixed when the VM is built; afterwards the bus
// is read-only, so vCPU threads look devices up without locks.
//
// Threads: `insert` on the VM-building thread only; `read`/`write` from any vCPU thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "vmm/bus/bus_device.h"
#include "sys/result.h"

namespace nodevisor::vmm {

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  // Adds a device; rejects an empty range, one that wraps, or one overlapping another.
  Status insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device);

  // Dispatches an access that lies entirely inside one device's range. Returns false when no
  // device claims it (a read then yields all ones, like an empty ISA/PCI bus).
  bool read(uint64_t address, std::span<uint8_t> data) const;
  bool write(uint64_t address, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t size;
    std::shared_ptr<BusDevice> device;
  };
  // Device claiming [address, address + length) and the offset in it, or nullptr.
  BusDevice* find(uint64_t address, uint64_t length, uint64_t& offset) const;

  std::string name_;
  std::map<uint64_t, Range> ranges_;  // by base address
};

}  // namespace nodevisor::vmm
