#include "vmm/devices/virtio/block/block_device.h"

#include <cstring>

#include "vmm/devices/virtio/block/block_request.h"

namespace nodevisor::vmm::virtio {

namespace {

constexpr uint32_t kBlockStateVersion = 1;
// Segments per request we accept (seg_max): one queue's worth minus header and status.
constexpr uint32_t kSegMax = kMaxQueueSize - 2;

// virtio_blk_config fields nodevisor fills (virtio 1.2 §5.2.4).
struct BlockConfig {
  uint64_t capacity;  // in 512-byte sectors
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors;
  uint32_t blk_size;
};
static_assert(sizeof(BlockConfig) == 24);

}  // namespace

Result<std::shared_ptr<BlockDevice>> BlockDevice::create(std::string name, bool read_only_slot,
                                                         std::optional<BlockBackend> disk, std::string serial) {
  if (serial.size() > kMaxSerialBytes) {
    return plain_error("EINVAL", "disk serial \"" + serial + "\" is longer than 20 bytes");
  }
  std::shared_ptr<BlockDevice> dev(new BlockDevice(std::move(name), read_only_slot));
  dev->disk_ = std::move(disk);
  dev->serial_ = std::move(serial);
  dev->bounce_.resize(kBounceBufferBytes);
  auto worker = DeviceWorker::start("nv-blk", 1, dev->lock(), [raw = dev.get()](uint16_t doorbell) {
    if (doorbell == 0) raw->process_queue();
  });
  if (!worker) return worker.error();
  dev->worker_ = std::move(worker).value();
  return dev;
}

BlockDevice::~BlockDevice() {
  worker_.reset();  // joins the worker before the members it uses go away
}

uint64_t BlockDevice::device_features() const {
  return kBlockFeatureSegMax | kBlockFeatureBlkSize | kBlockFeatureFlush | (ro_slot_ ? kBlockFeatureRo : 0);
}

void BlockDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
  BlockConfig config{};
  config.capacity = disk_ ? disk_->size_bytes() / 512 : 0;
  config.seg_max = kSegMax;
  config.blk_size = 512;
  read_config_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&config), sizeof config), offset, data);
}

Status BlockDevice::activate(GuestMemory& mem, InterruptSink& interrupts) {
  mem_ = &mem;
  interrupts_ = &interrupts;
  set_activated(true);
  // Requests the driver queued before (or, in a restored clone, before the snapshot).
  worker_->ring(0);
  return {};
}

void BlockDevice::reset() {
  set_activated(false);
  mem_ = nullptr;
  interrupts_ = nullptr;
}

void BlockDevice::kick(uint16_t queue) { worker_->ring(queue); }

void BlockDevice::wake_all() { worker_->ring(0); }

void BlockDevice::stop_serving() {
  stats_.ring_errors++;
  set_activated(false);
  if (interrupts_ != nullptr) interrupts_->needs_reset();
}

void BlockDevice::process_queue() {
  if (!activated() || paused() || mem_ == nullptr) return;
  Queue& queue = queues()[0];
  if (!queue.ready) return;
  bool used_any = false;
  for (;;) {
    auto popped = queue.pop(*mem_);
    if (!popped) {
      stop_serving();  // a broken ring
      break;
    }
    if (!popped.value()) break;
    PoppedChain& entry = *popped.value();
    uint32_t used_len = 0;
    if (entry.chain) {
      stats_.requests++;
      const BlockRequestOutcome outcome =
          handle_block_request(*mem_, *entry.chain, disk_ ? &*disk_ : nullptr, serial_, bounce_, &stop_flag());
      if (outcome.status != kBlockStatusOk) stats_.errors++;
      used_len = outcome.used_len;
    } else {
      stats_.bad_chains++;
    }
    if (!queue.add_used(*mem_, entry.head, used_len).ok()) {
      stop_serving();
      break;
    }
    if (stop_requested()) break;
    used_any = true;
  }
  if (used_any && queue.needs_interrupt(*mem_) && interrupts_ != nullptr) interrupts_->used_buffer();
}

Status BlockDevice::attach(BlockBackend disk, std::string serial, InterruptSink& interrupts) {
  if (serial.size() > kMaxSerialBytes) {
    return plain_error("EINVAL", "disk serial \"" + serial + "\" is longer than 20 bytes");
  }
  {
    std::lock_guard guard(lock());
    if (disk_) return plain_error("EBUSY", std::string("slot ") + name_ + " already holds a disk");
    disk_ = std::move(disk);
    serial_ = std::move(serial);
    bump_config_generation();
  }
  interrupts.config_changed();
  return {};
}

Status BlockDevice::detach(InterruptSink& interrupts) {
  {
    std::lock_guard guard(lock());
    if (!disk_) return plain_error("ENOENT", std::string("slot ") + name_ + " holds no disk");
    disk_.reset();
    serial_.clear();
    bump_config_generation();
  }
  interrupts.config_changed();
  return {};
}

bool BlockDevice::has_disk() {
  std::lock_guard guard(lock());
  return disk_.has_value();
}

std::optional<std::pair<uint64_t, uint64_t>> BlockDevice::disk_identity() {
  std::lock_guard guard(lock());
  if (!disk_) return std::nullopt;
  return std::make_pair(disk_->dev(), disk_->ino());
}

std::optional<BlockDiskInfo> BlockDevice::disk_info() {
  std::lock_guard guard(lock());
  if (!disk_) return std::nullopt;
  return BlockDiskInfo{disk_->path(), serial_, disk_->read_only()};
}

BlockDeviceStats BlockDevice::stats() {
  std::lock_guard guard(lock());
  return stats_;
}

void BlockDevice::save(StateWriter& out) const {
  // The disk itself is host state: a restored VM gets its disks attached again by path.
  out.put(kBlockStateVersion);
  out.put(static_cast<uint8_t>(ro_slot_));
  out.put(config_generation());
}

bool BlockDevice::restore(StateReader& in) {
  uint32_t version = 0, generation = 0;
  uint8_t ro = 0;
  if (!in.get(version) || version != kBlockStateVersion || !in.get(ro) || !in.get(generation)) return false;
  if ((ro != 0) != ro_slot_) return false;
  set_config_generation(generation);
  return true;
}

}  // namespace nodevisor::vmm::virtio
