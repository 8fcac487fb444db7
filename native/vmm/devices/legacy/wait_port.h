// The "wait" port (0x504, 32-bit reads) on which an idle probe vCPU parks. A read blocks the
// calling vCPU thread until the VMM posts a word (`post`), the idle timeout passes (returns 0),
// or the VMM holds the port (pause/stop: returns 0 at once, so the vCPU gets back to its
// mailbox). An idle guest thus costs no CPU, yet pause and stop never wait for a timeout.
//
// Threads: `read` on vCPU threads; `post` and `set_held` on any thread. One mutex and one
// condition variable; a read waiting here holds no other lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>

#include "vmm/bus/bus_device.h"

namespace nodevisor::vmm {

class WaitPort final : public BusDevice {
 public:
  static constexpr uint64_t kPort = 0x504;
  static constexpr uint64_t kPortCount = 4;
  static constexpr size_t kQueueCapacity = 1024;

  explicit WaitPort(std::chrono::milliseconds idle_timeout) : idle_timeout_(idle_timeout) {}

  // Queues a word for the next read. Returns false when the queue is full.
  bool post(uint32_t word);
  // Queues `word` unless it is already waiting: a wake-up that many events may ask for
  // (virtio interrupts) then costs the guest one read, not one per event.
  void post_coalesced(uint32_t word);
  // While held, reads return 0 immediately (the vCPU must reach its mailbox).
  void set_held(bool held);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;
  std::vector<uint8_t> save() const override;
  Status restore(std::span<const uint8_t> state) override;

 private:
  const std::chrono::milliseconds idle_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<uint32_t> words_;
  bool held_ = false;
};

}  // namespace nodevisor::vmm
