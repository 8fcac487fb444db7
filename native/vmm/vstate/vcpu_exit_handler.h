// What a vCPU thread calls for the exits it cannot finish alone. Implemented by the VM (it
// owns the buses and decides how the VM ends); the KVM layer never sees devices.
//
// Threads: every method runs on the calling vCPU thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace nodevisor::vmm {

class VcpuExitHandler {
 public:
  virtual ~VcpuExitHandler() = default;
  virtual void pio_read(uint16_t port, std::span<uint8_t> data) = 0;
  virtual void pio_write(uint16_t port, std::span<const uint8_t> data) = 0;
  virtual void mmio_read(uint64_t address, std::span<uint8_t> data) = 0;
  virtual void mmio_write(uint64_t address, std::span<const uint8_t> data) = 0;
  // Called after every return from KVM_RUN, before the exit is handled: writes KVM buffered
  // without exiting (coalesced port I/O) are played first, so devices see them in order.
  virtual void drain_buffered_writes() {}
  // This vCPU left a pause (a resume) and is about to re-enter the guest. False: it must not
  // (the handler ended the VM, vcpu_ended); the thread then finishes.
  virtual bool vcpu_resumed(uint32_t /*vcpu_index*/) { return true; }
  // The guest or KVM ended this vCPU — a normal power-off or reset as well as a triple fault
  // or an internal error; `reason` says which. The VM ends.
  virtual void vcpu_ended(uint32_t vcpu_index, const std::string& reason, const std::string& detail) = 0;
};

}  // namespace nodevisor::vmm
