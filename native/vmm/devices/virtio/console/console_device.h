// virtio-console with one port: the agent channel (DESIGN §4; /dev/hvc0 in a Linux guest).
//
// Queue 0 (receiveq) carries host → guest bytes into buffers the guest offers; queue 1
// (transmitq) carries guest → host bytes. Both directions are flow-controlled through
// bounded buffers: when the host does not read, the device stops taking the guest's transmit
// buffers (the guest then waits); when the guest does not offer receive buffers, host input
// stays queued and `write_input` accepts less (the host then waits for `input_space`).
// A transmit chain longer than kMaxTxChainBytes is dropped and counted, so the guest cannot
// make the host buffer unbounded data.
//
// Threads: queue work on the device's worker thread, under the device mutex, at most
// kConsoleChainsPerWakeup chains per wake-up (then the doorbell rings again), so a guest that
// keeps empty chains available cannot keep the worker in one long hold. `write_input` /
// `read_output` run on the host side (the JS thread through the addon) and take only
// `buffer_mutex_`, a small lock around the two host-side buffers that is never held across
// guest memory access: they never wait for the guest. Order: device mutex, then buffer mutex.
// The notifications run on the worker thread with the device mutex held: they must only
// signal (e.g. a thread-safe function call), never call back into the device.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vmm/devices/virtio/byte_queue.h"
#include "vmm/devices/virtio/device_worker.h"
#include "vmm/devices/virtio/virtio_device.h"

namespace nodevisor::vmm::virtio {

inline constexpr size_t kConsoleBufferBytes = 4 * 1024 * 1024;
// One agent frame: a 4-byte header and at most 1 MiB of payload (docs/protocol.md).
inline constexpr uint64_t kMaxTxChainBytes = 4 + 1024 * 1024;
// Chains taken per queue per wake-up of the worker.
inline constexpr uint32_t kConsoleChainsPerWakeup = 64;

struct ConsoleNotifications {
  std::function<void()> output_ready;  // guest output waits in read_output()
  std::function<void()> input_space;   // write_input() may accept more
};

struct ConsoleStats {
  uint64_t bytes_in = 0;   // host → guest, delivered
  uint64_t bytes_out = 0;  // guest → host, taken from the guest
  uint64_t dropped_chains = 0;
  uint64_t ring_errors = 0;
};

class ConsoleDevice final : public VirtioDevice {
 public:
  static Result<std::shared_ptr<ConsoleDevice>> create(std::string name, ConsoleNotifications notify);
  ~ConsoleDevice() override;

  uint32_t device_id() const override { return kDeviceIdConsole; }
  uint64_t device_features() const override { return 0; }
  const char* name() const override { return name_.c_str(); }

  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, InterruptSink& interrupts) override;
  void reset() override;
  void kick(uint16_t queue) override;
  void wake_all() override;
  // The VM is going away: takes the transmit chains the guest had queued (as far as the
  // buffer allows), so the host can still read the guest's last words. Mutex taken inside.
  void drain_final();
  void save(StateWriter& out) const override;
  Status restore(StateReader& in) override;

  // Host side. Queues as much of `data` as fits and returns how much was taken.
  size_t write_input(std::span<const uint8_t> data);
  // Takes up to `max` bytes of guest output.
  std::vector<uint8_t> read_output(size_t max);
  ConsoleStats stats();
  // Drops the host-side buffers (both directions): a VM restored from a snapshot gets a fresh
  // agent channel, not bytes meant for, or written to, the VM it was saved from.
  void discard_host_buffers();
  // A restore's first host → guest bytes (Vm::restore's `agent_input`), in two steps that
  // leave the worker alone (it is paused, and is woken at resume): `queue_input` appends them
  // to the host → guest buffer and returns how many it took; `fill_receive_buffers` puts what
  // is queued into the guest's receive buffers right away, on the calling thread, so the guest
  // finds it as it starts. Only before the guest first runs (its vCPU threads may exist,
  // parked, or the one calling); the device mutex is taken. What does not fit the receive
  // buffers is delivered by the worker once the VM runs.
  size_t queue_input(std::span<const uint8_t> data);
  void fill_receive_buffers();

  int queue_eventfd(uint16_t queue) const { return worker_->queue_eventfd(queue); }

  // What the worker does when `doorbell` rings (queue 0, 1, or 2 for the host), run on the
  // calling thread: for the fuzz target, whose crashes must reproduce without a thread race.
  // Takes the device mutex; returns true when it stopped at its budget with work left.
  bool serve_doorbell(uint16_t doorbell) { return on_doorbell(doorbell); }

 private:
  ConsoleDevice(std::string name, ConsoleNotifications notify)
      : VirtioDevice(2), name_(std::move(name)), notify_(std::move(notify)) {}
  bool on_doorbell(uint16_t doorbell);  // worker thread; true: budget spent, work left
  // Device mutex held; each returns true when it stopped at its budget with work left.
  bool fill_receive_queue(uint32_t budget);
  bool drain_transmit_queue(uint32_t budget);
  void broken_ring();

  std::string name_;
  ConsoleNotifications notify_;
  mutable std::mutex buffer_mutex_;        // guards input_, output_, input_was_full_
  ByteQueue input_{kConsoleBufferBytes};   // host → guest, waiting for receive buffers
  ByteQueue output_{kConsoleBufferBytes};  // guest → host, waiting for the host to read
  bool input_was_full_ = false;
  std::vector<uint8_t> scratch_;           // worker only: input on its way into guest memory
  GuestMemory* mem_ = nullptr;
  InterruptSink* interrupts_ = nullptr;
  ConsoleStats stats_;
  std::unique_ptr<DeviceWorker> worker_;
};

}  // namespace nodevisor::vmm::virtio
