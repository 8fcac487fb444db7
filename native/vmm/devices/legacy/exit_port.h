// The test exit port, at QEMU's isa-debug-exit address (0x501): a write ends the VM with
// reason "guest-exit" and the written value as the exit code. Tests and the probe use it to
// finish a run the same way under nodevisor and under QEMU.
//
// Threads: vCPU threads.
#pragma once

#include <cstdint>
#include <functional>

#include "vmm/bus/bus_device.h"

namespace nodevisor::vmm {

class ExitPort final : public BusDevice {
 public:
  static constexpr uint64_t kPort = 0x501;
  static constexpr uint64_t kPortCount = 2;  // QEMU's default iosize

  using ExitFn = std::function<void(uint32_t code)>;
  explicit ExitPort(ExitFn on_exit) : on_exit_(std::move(on_exit)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;
  std::vector<uint8_t> save() const override;
  Status restore(std::span<const uint8_t> state) override;

 private:
  ExitFn on_exit_;
};

}  // namespace nodevisor::vmm
