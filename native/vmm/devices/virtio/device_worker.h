// The thread a virtio device does its work on, so guest I/O never runs on a vCPU thread and
// never on the JS thread.
//
// One eventfd per queue is the queue's doorbell: the transport's QueueNotify writes it (or KVM
// does, when the VM registers it as an ioeventfd), and the host side of a device (console
// input, hot-plug) rings an extra "host" doorbell. The worker polls them all and calls the
// device's handler for each one that rang, with the device's mutex held. Stop rings a last
// eventfd and joins; the worker never holds the mutex while it waits, so stopping cannot
// deadlock with a vCPU that is inside the transport.
//
// Threads: constructed and destroyed on the VM-owning thread; `ring` from any thread; the
// handler runs on the worker thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm::virtio {

class DeviceWorker {
 public:
  // `handler(index)` is called for queue doorbells 0..queues-1 and for the host doorbell
  // (index == queues), with no lock held; it returns true when it stopped at its budget with
  // work left.
  using Handler = std::function<bool(uint16_t doorbell)>;

  // `watched` are host fds (a tap) the worker also polls for input while watched: fd i calls
  // the handler with index queues + 1 + i. The worker does not own them.
  static Result<std::unique_ptr<DeviceWorker>> start(std::string thread_name, uint16_t queues, Handler handler,
                                                     std::vector<int> watched = {});
  ~DeviceWorker();

  DeviceWorker(const DeviceWorker&) = delete;
  DeviceWorker& operator=(const DeviceWorker&) = delete;

  // Wakes the worker for doorbell `index` (a queue, or `host_doorbell()`). Never blocks.
  void ring(uint16_t index);
  uint16_t host_doorbell() const { return static_cast<uint16_t>(doorbells_.size() - 1); }
  // The eventfd of a queue's doorbell, for KVM_IOEVENTFD.
  int queue_eventfd(uint16_t queue) const { return doorbells_.at(queue).get(); }
  // Handler index of watched fd `i`.
  uint16_t watched_index(size_t i) const { return static_cast<uint16_t>(doorbells_.size() + i); }
  // Starts or stops polling watched fd `i` (a device with no room for input stops, so a
  // readable fd does not spin the worker). Worker thread only (from the handler).
  void watch(size_t i, bool on) { watching_.at(i) = on; }

 private:
  explicit DeviceWorker(Handler handler) : handler_(std::move(handler)) {}
  void run();

  Handler handler_;
  std::vector<UniqueFd> doorbells_;  // queues, then host
  std::vector<int> watched_;         // not owned
  std::vector<bool> watching_;       // worker thread only
  UniqueFd stop_;
  std::thread thread_;
};

}  // namespace nodevisor::vmm::virtio
