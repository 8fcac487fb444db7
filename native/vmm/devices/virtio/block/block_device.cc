#include "vmm/devices/virtio/block/block_device.h"

#include <cstring>

#include "vmm/devices/virtio/block/block_request.h"

namespace nodevisor::vmm::virtio {

namespace {

constexpr uint32_t kBlockStateVersion = 1;
// Segments per request we accept (seg_max): one queue's worth minus header and status.
constexpr uint32_t kSegMax = kMaxQueueSize - 2;
// The worker's budget. A batch is at most this many chains, and stops growing once it holds
// this much data (at least one chain): that bounds each hold of the device mutex (popping and
// returning chains) and how much work a pause throws away. Per wake-up at most this many
// batches, then the doorbell is rung again so a stop is seen.
constexpr size_t kChainsPerBatch = 16;
constexpr uint64_t kBytesPerBatch = 1 << 20;
constexpr int kBatchesPerWakeup = 8;

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
  NV_TRY(check_serial(serial));
  std::shared_ptr<BlockDevice> dev(new BlockDevice(std::move(name), read_only_slot));
  if (disk) dev->disk_ = std::make_shared<const BlockBackend>(std::move(*disk));
  dev->serial_ = std::move(serial);
  dev->bounce_.resize(kBounceBufferBytes);
  auto worker = DeviceWorker::start("nv-blk", 1, [raw = dev.get()](uint16_t doorbell) {
    return doorbell == 0 && raw->process_queue();
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
  epoch_++;
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

bool BlockDevice::process_queue() {
  std::lock_guard work(work_lock());
  for (int batch = 0; batch < kBatchesPerWakeup; batch++) {
    bool more = false;
    if (!process_batch(more) || !more) return false;
  }
  return true;
}

bool BlockDevice::process_batch(bool& more) {
  // 1. Under the device mutex: take a batch of chains and what executing them needs.
  std::vector<PoppedChain> batch;
  GuestMemory* mem = nullptr;
  std::shared_ptr<const BlockBackend> disk;
  std::string serial;
  uint64_t epoch = 0;
  {
    std::lock_guard guard(lock());
    if (!activated() || paused() || mem_ == nullptr || work_cancelled()) return false;
    Queue& queue = queues()[0];
    if (!queue.ready) return false;
    uint64_t bytes = 0;
    while (batch.size() < kChainsPerBatch && bytes < kBytesPerBatch) {
      auto popped = queue.pop(*mem_);
      if (!popped) {
        stop_serving();  // a broken ring: nothing is returned until the driver resets
        return false;
      }
      if (!popped.value()) break;
      if (popped.value()->chain) bytes += popped.value()->chain->readable_bytes + popped.value()->chain->writable_bytes;
      batch.push_back(std::move(*popped.value()));
    }
    if (batch.empty()) return false;
    more = batch.size() == kChainsPerBatch || bytes >= kBytesPerBatch;
    mem = mem_;
    disk = disk_;
    serial = serial_;
    epoch = epoch_;
  }

  // 2. Without it: the requests. Guest memory stays mapped (the VM frees it only after
  // shut_down took the work lock); a cancel ends a request at its next 64 KiB step.
  std::vector<uint32_t> used_len(batch.size(), 0);
  BlockDeviceStats delta;
  for (size_t i = 0; i < batch.size(); i++) {
    if (!batch[i].chain) {
      delta.bad_chains++;
      continue;
    }
    delta.requests++;
    const BlockRequestOutcome outcome =
        handle_block_request(*mem, *batch[i].chain, disk.get(), serial, bounce_, &cancel_flag());
    if (outcome.status != kBlockStatusOk) delta.errors++;
    used_len[i] = outcome.used_len;
  }

  // 3. Under the device mutex again: return the chains, unless the driver reset the device
  // meanwhile (it no longer waits for them) or the work was cancelled (a pause: put the batch
  // back, it runs again after the resume; a stop: nobody waits for it).
  std::lock_guard guard(lock());
  if (epoch != epoch_ || !activated() || mem_ == nullptr) return false;
  Queue& queue = queues()[0];
  if (work_cancelled()) {
    queue.unpop(static_cast<uint16_t>(batch.size()));
    return false;
  }
  stats_.requests += delta.requests;
  stats_.errors += delta.errors;
  stats_.bad_chains += delta.bad_chains;
  for (size_t i = 0; i < batch.size(); i++) {
    if (!queue.add_used(*mem_, batch[i].head, used_len[i]).ok()) {
      stop_serving();
      return false;
    }
  }
  if (queue.needs_interrupt(*mem_) && interrupts_ != nullptr) interrupts_->used_buffer();
  return true;
}

Status BlockDevice::attach(BlockBackend disk, std::string serial, InterruptSink& interrupts) {
  NV_TRY(check_serial(serial));
  {
    std::lock_guard guard(lock());
    if (disk_) return plain_error("EBUSY", std::string("slot ") + name_ + " already holds a disk");
    disk_ = std::make_shared<const BlockBackend>(std::move(disk));
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
  return disk_ != nullptr;
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

Status BlockDevice::restore(StateReader& in) {
  uint32_t version = 0, generation = 0;
  uint8_t ro = 0;
  if (!in.get(version) || version != kBlockStateVersion || !in.get(ro) || !in.get(generation) ||
      (ro != 0) != ro_slot_) {
    return truncated_state(name());
  }
  set_config_generation(generation);
  return {};
}

}  // namespace nodevisor::vmm::virtio
