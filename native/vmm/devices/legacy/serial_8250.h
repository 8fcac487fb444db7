// A 16550-compatible UART (COM1 at 0x3f8, IRQ 4): transmitted bytes go to an output callback
// (console events), received bytes come from `enqueue_input` (vm.writeConsole). Enough of
// the register set for Linux's 8250 driver and the probe; no modem lines, no real baud rate.
//
// Threads: register access on vCPU threads, `enqueue_input` on a JS-side thread; one mutex
// guards the registers. The output and interrupt callbacks are called without the lock held.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "vmm/bus/bus_device.h"

namespace nodevisor::vmm {

class Serial8250 final : public BusDevice {
 public:
  static constexpr uint64_t kCom1Port = 0x3f8;
  static constexpr uint64_t kPortCount = 8;
  static constexpr uint32_t kCom1Irq = 4;
  static constexpr size_t kInputCapacity = 64 * 1024;  // bytes buffered for the guest

  using OutputFn = std::function<void(uint8_t byte)>;
  using InterruptFn = std::function<void()>;  // raises the IRQ (edge)

  Serial8250(OutputFn output, InterruptFn interrupt);

  // Returns how many bytes were accepted (the rest is dropped when the guest does not read).
  size_t enqueue_input(std::span<const uint8_t> bytes);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;
  std::vector<uint8_t> save() const override;
  Status restore(std::span<const uint8_t> state) override;

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value, bool& raise, bool& emit, uint8_t& out);
  uint8_t interrupt_identification() const;
  bool interrupt_pending() const;

  OutputFn output_;
  InterruptFn interrupt_;
  mutable std::mutex mutex_;
  uint8_t ier_ = 0;  // interrupt enable
  uint8_t lcr_ = 0;  // line control (bit 7: divisor latch access)
  uint8_t mcr_ = 0;  // modem control
  uint8_t scr_ = 0;  // scratch
  uint8_t fcr_ = 0;  // FIFO control (write-only; remembered for IIR bits 7:6)
  uint8_t dll_ = 0x0c, dlh_ = 0;  // divisor latch: 9600 baud
  bool thr_empty_interrupt_ = false;  // "THR empty" is pending until IIR is read or THR written
  std::deque<uint8_t> input_;
};

}  // namespace nodevisor::vmm
