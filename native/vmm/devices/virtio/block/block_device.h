// virtio-blk: one request queue, a config space with the capacity, and a slot that can be
// empty (capacity 0) and have a disk attached or detached while the guest runs — the
// rootfs hot-plug of DESIGN §3. Attaching sets capacity, serial and read-only flag and raises
// a config-change interrupt; the guest driver re-reads the capacity and the disk appears.
//
// Read-only: a disk attached read-only refuses writes (IOERR) whatever the guest believes;
// VIRTIO_BLK_F_RO is offered when the slot was created read-only, since a Linux driver
// reads that bit only when it probes the device.
//
// Threads: requests run on the device's worker thread (DeviceWorker); attach/detach on the
// caller's thread (a libuv worker). The worker pops a small batch of chains under the device
// mutex, executes them (guest memory and disk I/O, which the guest sizes) holding only the
// work lock, then returns them under the device mutex again: a vCPU's register access or an
// attach never waits for a request, only for one short step of the ring.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/devices/virtio/block/block_backend.h"
#include "vmm/devices/virtio/device_worker.h"
#include "vmm/devices/virtio/virtio_device.h"

namespace nodevisor::vmm::virtio {

inline constexpr uint64_t kBlockFeatureSegMax = 1ull << 2;
inline constexpr uint64_t kBlockFeatureRo = 1ull << 5;
inline constexpr uint64_t kBlockFeatureBlkSize = 1ull << 6;
inline constexpr uint64_t kBlockFeatureFlush = 1ull << 9;

// The longest serial virtio-blk can report (GET_ID).
inline constexpr size_t kMaxSerialBytes = 20;

// EINVAL naming the serial when it is longer than kMaxSerialBytes. Any thread; pure.
inline Status check_serial(const std::string& serial) {
  if (serial.size() > kMaxSerialBytes) {
    return plain_error("EINVAL", "disk serial \"" + serial + "\" is longer than " + std::to_string(kMaxSerialBytes) +
                                     " bytes");
  }
  return {};
}

// What a slot holds, as a snapshot records it (the disk is reopened by path on restore).
struct BlockDiskInfo {
  std::string path;
  std::string serial;
  bool read_only = false;
};

struct BlockDeviceStats {
  uint64_t requests = 0;
  uint64_t errors = 0;        // requests answered with IOERR or UNSUPP
  uint64_t bad_chains = 0;    // malformed descriptor chains
  uint64_t ring_errors = 0;   // broken rings (the device then needs a reset)
};

class BlockDevice final : public VirtioDevice {
 public:
  // `read_only_slot` offers VIRTIO_BLK_F_RO. `disk` may be empty (a hot-plug slot).
  static Result<std::shared_ptr<BlockDevice>> create(std::string name, bool read_only_slot,
                                                     std::optional<BlockBackend> disk, std::string serial);
  ~BlockDevice() override;

  uint32_t device_id() const override { return kDeviceIdBlock; }
  uint64_t device_features() const override;
  const char* name() const override { return name_.c_str(); }

  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, InterruptSink& interrupts) override;
  void reset() override;
  void kick(uint16_t queue) override;
  void wake_all() override;
  void save(StateWriter& out) const override;
  Status restore(StateReader& in) override;

  // Hot-plug (device mutex taken inside). `interrupts` is the transport, to announce it.
  Status attach(BlockBackend disk, std::string serial, InterruptSink& interrupts);
  Status detach(InterruptSink& interrupts);
  bool has_disk();
  std::optional<std::pair<uint64_t, uint64_t>> disk_identity();  // (dev, ino) of the disk
  BlockDeviceStats stats();
  std::optional<BlockDiskInfo> disk_info();  // mutex taken inside

  int queue_eventfd() const { return worker_->queue_eventfd(0); }

 private:
  BlockDevice(std::string name, bool read_only_slot) : VirtioDevice(1), name_(std::move(name)), ro_slot_(read_only_slot) {}
  bool process_queue();  // worker thread, no lock held; true: budget spent, work left
  bool process_batch(bool& more);  // one batch: pop, execute unlocked, return
  void stop_serving();   // a broken ring: until the driver resets the device (mutex held)

  std::string name_;
  bool ro_slot_;
  // Shared with a batch in flight, so a detach during a request does not close its fd.
  std::shared_ptr<const BlockBackend> disk_;
  std::string serial_;
  std::vector<uint8_t> bounce_;          // worker only, under the work lock
  GuestMemory* mem_ = nullptr;          // set while activated
  InterruptSink* interrupts_ = nullptr;  // set while activated
  uint64_t epoch_ = 0;  // bumped by reset: a batch popped before a reset is not returned
  BlockDeviceStats stats_;
  std::unique_ptr<DeviceWorker> worker_;
};

}  // namespace nodevisor::vmm::virtio
