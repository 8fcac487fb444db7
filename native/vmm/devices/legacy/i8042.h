// The i8042 keyboard controller, reduced to what a guest uses to reboot: writing 0xfe (pulse
// the CPU reset line) to the command port ends the VM with reason "reset". Data and status
// reads return "nothing there".
//
// Threads: vCPU threads. No mutable state besides the command byte.
#pragma once

#include <atomic>
#include <functional>

#include "vmm/bus/bus_device.h"

namespace nodevisor::vmm {

class I8042 final : public BusDevice {
 public:
  static constexpr uint64_t kDataPort = 0x60;
  static constexpr uint64_t kCommandPort = 0x64;  // registered as [0x60, 0x65), see read()

  using ResetFn = std::function<void()>;
  explicit I8042(ResetFn reset) : reset_(std::move(reset)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;
  std::vector<uint8_t> save() const override;
  Status restore(std::span<const uint8_t> state) override;

 private:
  ResetFn reset_;
  std::atomic<uint8_t> last_command_{0};
};

}  // namespace nodevisor::vmm
