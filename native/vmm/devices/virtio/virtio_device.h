// What a virtio device implements, independent of its transport (Firecracker's split:
// devices/virtio/device.rs vs transport/mmio.rs). The transport owns the registers, the
// status state machine and the interrupt status; the device owns its queues, its config
// space and its work.
//
// Threads and locking: every method is called with the device's mutex held (`lock()`),
// by the transport on a vCPU thread, by the VM on the JS side (hot-plug), or by the device's
// own worker thread. Only `kick` may be called without it (it only wakes the worker).
//
// The device mutex is taken by vCPU threads (register accesses) and by attach/detach, so it
// is only ever held for a bounded step of work, never across guest-sized work: a device that
// does long work (a disk request) does it holding only `work_lock()`, which no vCPU and no JS
// call takes. Whoever needs the device idle (pause, shut-down) first sets `cancel_work`, then
// takes `work_lock()` (the worker gives up at its next 64 KiB step), then `lock()`.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "vmm/devices/virtio/queue.h"
#include "vmm/memory/guest_memory.h"
#include "sys/result.h"

namespace nodevisor::vmm::virtio {

// How a device tells the driver something happened. Implemented by the transport, which
// sets the interrupt status bit and raises the VM's interrupt line.
class InterruptSink {
 public:
  virtual ~InterruptSink() = default;
  virtual void used_buffer() = 0;
  virtual void config_changed() = 0;
  // The device stopped serving (a broken ring): the transport sets DEVICE_NEEDS_RESET and
  // tells the driver (virtio 1.2 §2.1.2). Called with the device mutex held.
  virtual void needs_reset() = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual uint32_t device_id() const = 0;
  virtual uint64_t device_features() const = 0;
  virtual const char* name() const = 0;

  std::mutex& lock() { return mutex_; }
  // Held by the worker for a whole unit of work, including the part done without `lock()`.
  // Order: work_lock() before lock().
  std::mutex& work_lock() { return work_mutex_; }
  std::vector<Queue>& queues() { return queues_; }

  // Features the driver accepted; set by the transport when FEATURES_OK is accepted.
  uint64_t acked_features() const { return acked_features_; }
  void set_acked_features(uint64_t features) { acked_features_ = features; }

  // Device-specific config space. `offset` is inside the config area; `data.size()` comes
  // from the guest. Reads past the end give zeros; writes to read-only fields are ignored.
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write_config(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}
  // Bumped whenever the device changes its config space (hot-plug). Atomic: the transport
  // reads it without the device mutex.
  uint32_t config_generation() const { return config_generation_.load(); }

  // The driver set DRIVER_OK: the queues are validated; the device starts serving them.
  virtual Status activate(GuestMemory& mem, InterruptSink& interrupts) = 0;
  bool activated() const { return activated_; }
  // The driver reset the device (status 0) or the VM is torn down: stop using the queues.
  virtual void reset() = 0;
  // The driver notified `queue` (QueueNotify). Wakes the device's worker; never blocks.
  virtual void kick(uint16_t queue) = 0;
  // Wakes the worker for every queue and for host work (after a pause, a restore).
  virtual void wake_all() = 0;

  // While paused (the VM is paused or being snapshotted) the worker leaves the queues and
  // guest memory alone; host-side buffers still fill. Unpausing wakes the worker, unless the
  // caller does that later itself (`wake` false: Vm::resume has the vCPU thread do it).
  bool paused() const { return paused_; }
  void set_paused(bool on, bool wake = true) {
    paused_ = on;
    if (!on && wake) wake_all();
  }
  // Asks work in progress to give up at its next step (a VM being torn down must not wait
  // for a long request). No lock: an atomic the worker polls. Final.
  void request_stop() {
    stop_requested_.store(true);
    cancel_.store(true);
  }
  bool stop_requested() const { return stop_requested_.load(); }
  // For good: work in progress gives up at its next step, then, under both locks, the device
  // resets (forgets guest memory and its interrupt sink). After this its worker touches
  // neither again, so they may go. Any thread but the worker's.
  void stop_and_reset() {
    request_stop();
    std::lock_guard work(work_mutex_);
    std::lock_guard guard(mutex_);
    reset();
  }
  // Asks work in progress to give up at its next step and put back what it had not finished
  // (a pause waits for the worker; the work is done again after the resume). Any thread.
  void cancel_work(bool on) { cancel_.store(on || stop_requested_.load()); }
  bool work_cancelled() const { return cancel_.load(std::memory_order_relaxed); }

  // Device-specific state (not the queues, which the transport saves). `restore` reads
  // untrusted bytes (a snapshot file): it parses and checks all of them before it changes
  // anything, and returns an ESTATE error (the device unchanged) when they are not valid.
  virtual void save(StateWriter& out) const = 0;
  virtual Status restore(StateReader& in) = 0;

 protected:
  explicit VirtioDevice(uint16_t queue_count, uint16_t max_queue_size = kMaxQueueSize)
      : queues_(queue_count, Queue(max_queue_size)) {}

  // What long work polls between steps: set by request_stop and cancel_work.
  const std::atomic<bool>& cancel_flag() const { return cancel_; }
  void bump_config_generation() { config_generation_.fetch_add(1); }
  void set_config_generation(uint32_t generation) { config_generation_.store(generation); }
  void set_activated(bool on) { activated_ = on; }

  // Copies `data.size()` bytes of `config` at `offset` into `data`; zeros past the end.
  static void read_config_bytes(std::span<const uint8_t> config, uint64_t offset, std::span<uint8_t> data) {
    for (size_t i = 0; i < data.size(); i++) {
      const uint64_t at = offset + i;
      data[i] = (at >= offset && at < config.size()) ? config[at] : 0;
    }
  }

 private:
  std::mutex mutex_;
  std::mutex work_mutex_;
  std::vector<Queue> queues_;
  uint64_t acked_features_ = 0;
  std::atomic<uint32_t> config_generation_{0};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> cancel_{false};
  bool activated_ = false;
  bool paused_ = false;
};

}  // namespace nodevisor::vmm::virtio
