// The virtio-mmio transport, version 2 ("modern"; virtio 1.2 §4.2): the register window a
// guest driver uses to find, negotiate with and drive one virtio device.
//
// Guest writes are untrusted. The driver-status register only accepts the transitions listed
// in one table (Firecracker's habit); any other value is ignored and the status stays as it
// was (the driver may always add FAILED, and writing 0 resets). Queue registers
// may only be written between FEATURES_OK and DRIVER_OK, for a queue that is not ready.
// Feature negotiation refuses features the device did not offer and requires VERSION_1.
//
// Threads: `read`/`write` run on vCPU threads (MMIO exits), under the device's mutex.
// Interrupts are raised from whichever thread completes work (the device worker, or the JS
// side for hot-plug) through `InterruptSink`, which only touches an atomic and an eventfd.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "vmm/bus/bus_device.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/memory/guest_memory.h"

namespace nodevisor::vmm::virtio {

class MmioTransport final : public BusDevice, public InterruptSink {
 public:
  // `raise_irq` asserts the device's interrupt line (an irqfd write in the VM).
  MmioTransport(std::shared_ptr<VirtioDevice> device, GuestMemory& mem, std::function<void()> raise_irq);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  std::vector<uint8_t> save() const override;
  Status restore(std::span<const uint8_t> state) override;

  // InterruptSink.
  void used_buffer() override;
  void config_changed() override;
  void needs_reset() override;

  VirtioDevice& device() { return *device_; }
  uint32_t status() const { return status_; }
  uint32_t interrupt_status() const { return interrupt_status_.load(); }

 private:
  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void set_status(uint32_t value);
  Queue* selected_queue();
  bool queue_config_writable();
  void reset_device();

  std::shared_ptr<VirtioDevice> device_;
  GuestMemory& mem_;
  std::function<void()> raise_irq_;

  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  std::atomic<uint32_t> interrupt_status_{0};
};

}  // namespace nodevisor::vmm::virtio
