// The VM generation id (the idea of Microsoft's VMGenID): a 64-bit value that names one VM
// instance. It is drawn at random when a VM is built — so every VM restored from a snapshot,
// every clone of a template, gets a new one — and never changes while the VM lives. A guest
// reads it from this port (two 32-bit `in`s at 0x508 and 0x50c, or eight bytes), or from
// its memory, where the VMM writes it when the guest's ELF note asks (`address`), and, when it
// differs from what it saw before, knows it was cloned and must become unique (reseed its
// RNG, new ids). The VMM knows nothing about what a guest does with it.
//
// Threads: reads on vCPU threads; the value is immutable after construction.
#pragma once

#include <cstdint>

#include "vmm/bus/bus_device.h"

namespace nodevisor::vmm {

class VmGeneration final : public BusDevice {
 public:
  static constexpr uint64_t kPort = 0x508;
  static constexpr uint64_t kPortCount = 8;

  VmGeneration();  // draws a new value

  uint64_t value() const { return value_; }
  // Where the guest reads the value in its memory (NODEVISOR_NOTE_GENERATION_GPA), 0: nowhere.
  // The VM writes the value there (vm.cc, vm_restore.cc); saved with the device, so a restored
  // VM writes its own value at the same place.
  uint64_t address() const { return address_; }
  void set_address(uint64_t gpa) { address_ = gpa; }

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;  // ignored: read-only
  // Saves the value for the record, and the address; restore checks the blob and takes the
  // address, but keeps this VM's own value: a VM built from a snapshot is a new instance.
  std::vector<uint8_t> save() const override;
  Status restore(std::span<const uint8_t> state) override;

 private:
  uint64_t value_;
  uint64_t address_ = 0;
};

}  // namespace nodevisor::vmm
