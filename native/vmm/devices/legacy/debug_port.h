// Port 0x80, the POST/debug port: the guest writes a one-byte phase code (0x40 kernel start,
// 0x41 ready) and the VMM timestamps it at once, in monotonic ns since the VM was started:
// this is the boot timer.
//
// Threads: writes on vCPU threads; `set_origin` on the thread that starts the VM, before any
// vCPU runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "vmm/bus/bus_device.h"

namespace nodevisor::vmm {

// CLOCK_MONOTONIC in nanoseconds.
uint64_t monotonic_ns();

class DebugPort final : public BusDevice {
 public:
  static constexpr uint64_t kPort = 0x80;

  using PhaseFn = std::function<void(uint8_t code, uint64_t ns_since_start)>;
  explicit DebugPort(PhaseFn on_phase) : on_phase_(std::move(on_phase)) {}

  void set_origin(uint64_t monotonic_start_ns) { origin_ns_ = monotonic_start_ns; }

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;
  std::vector<uint8_t> save() const override;
  Status restore(std::span<const uint8_t> state) override;

 private:
  PhaseFn on_phase_;
  std::atomic<uint64_t> origin_ns_{0};
  std::atomic<uint8_t> last_code_{0};
};

}  // namespace nodevisor::vmm
