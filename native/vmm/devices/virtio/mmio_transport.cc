#include "vmm/devices/virtio/mmio_transport.h"

#include <cstring>
#include <mutex>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm::virtio {

namespace {

constexpr uint32_t kTransportStateTag = state_tag("VMIO");
constexpr uint32_t kTransportStateVersion = 1;
constexpr size_t kMaxDeviceStateBytes = 16 * 1024 * 1024;  // console buffers included

constexpr uint32_t kAck = kStatusAcknowledge;
constexpr uint32_t kAckDriver = kStatusAcknowledge | kStatusDriver;
constexpr uint32_t kFeaturesOk = kAckDriver | kStatusFeaturesOk;
constexpr uint32_t kRunning = kFeaturesOk | kStatusDriverOk;

// The driver-status transitions a driver may make (virtio 1.2 §3.1.1), besides writing 0
// (reset) and adding FAILED, which are always allowed. Anything else is ignored.
struct Transition {
  uint32_t from;
  uint32_t to;
};
constexpr Transition kValidTransitions[] = {
    {0, kAck},
    {kAck, kAckDriver},
    {kAckDriver, kFeaturesOk},
    {kFeaturesOk, kRunning},
};

uint32_t load_le32(std::span<const uint8_t> data) {
  uint32_t v = 0;
  std::memcpy(&v, data.data(), sizeof v);
  return v;
}

void store_le32(std::span<uint8_t> data, uint32_t v) { std::memcpy(data.data(), &v, sizeof v); }

}  // namespace

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, GuestMemory& mem, std::function<void()> raise_irq)
    : device_(std::move(device)), mem_(mem), raise_irq_(std::move(raise_irq)) {}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  // Registers that are constant or atomic are served without the device mutex, so a vCPU
  // handling this device's interrupt never waits for the worker's current request.
  if (data.size() == 4 && (offset & 3) == 0) {
    switch (offset) {
      case mmio::kMagicValue:
      case mmio::kVersion:
      case mmio::kDeviceId:
      case mmio::kVendorId:
      case mmio::kInterruptStatus:
      case mmio::kConfigGeneration:
        store_le32(data, read_register(offset));
        return;
      default:
        break;
    }
  }
  std::lock_guard guard(device_->lock());
  if (offset >= mmio::kConfig) {
    device_->read_config(offset - mmio::kConfig, data);
    return;
  }
  // Registers are 32 bits wide and must be accessed as such (§4.2.2.2).
  if (data.size() != 4 || (offset & 3) != 0) {
    std::fill(data.begin(), data.end(), 0);
    return;
  }
  store_le32(data, read_register(offset));
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() == 4 && offset == mmio::kInterruptAck) {
    interrupt_status_.fetch_and(~load_le32(data));  // atomic: no device mutex needed
    return;
  }
  if (data.size() == 4 && offset == mmio::kQueueNotify) {
    // Only rings a doorbell: never waits for the worker. activated() is read racily; a
    // notify that races a reset is harmless (the worker finds the device inactive).
    const uint32_t queue = load_le32(data);
    if (queue < device_->queues().size()) device_->kick(static_cast<uint16_t>(queue));
    return;
  }
  std::lock_guard guard(device_->lock());
  if (offset >= mmio::kConfig) {
    device_->write_config(offset - mmio::kConfig, data);
    return;
  }
  if (data.size() != 4 || (offset & 3) != 0) return;
  write_register(offset, load_le32(data));
}

Queue* MmioTransport::selected_queue() {
  auto& queues = device_->queues();
  return queue_sel_ < queues.size() ? &queues[queue_sel_] : nullptr;
}

bool MmioTransport::queue_config_writable() {
  Queue* q = selected_queue();
  return q != nullptr && !q->ready && (status_ & kStatusFeaturesOk) && !(status_ & kStatusDriverOk) &&
         !(status_ & kStatusFailed);
}

uint32_t MmioTransport::read_register(uint64_t offset) {
  switch (offset) {
    case mmio::kMagicValue:
      return mmio::kMagic;
    case mmio::kVersion:
      return mmio::kVersion2;
    case mmio::kDeviceId:
      return device_->device_id();
    case mmio::kVendorId:
      return mmio::kVendor;
    case mmio::kDeviceFeatures: {
      const uint64_t features = device_->device_features() | kFeatureVersion1;
      if (device_features_sel_ == 0) return static_cast<uint32_t>(features);
      if (device_features_sel_ == 1) return static_cast<uint32_t>(features >> 32);
      return 0;
    }
    case mmio::kQueueNumMax: {
      Queue* q = selected_queue();
      return q ? q->max_size() : 0;
    }
    case mmio::kQueueReady: {
      Queue* q = selected_queue();
      return q && q->ready ? 1 : 0;
    }
    case mmio::kInterruptStatus:
      return interrupt_status_.load();
    case mmio::kStatus:
      return status_;
    case mmio::kConfigGeneration:
      return device_->config_generation();
    default:
      return 0;  // write-only or reserved
  }
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case mmio::kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case mmio::kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case mmio::kDriverFeatures:
      // Only while negotiating: after FEATURES_OK the features are fixed.
      if (status_ != kAckDriver) return;
      if (driver_features_sel_ == 0) {
        driver_features_ = (driver_features_ & ~0xffff'ffffull) | value;
      } else if (driver_features_sel_ == 1) {
        driver_features_ = (driver_features_ & 0xffff'ffffull) | (static_cast<uint64_t>(value) << 32);
      }
      return;
    case mmio::kQueueSel:
      queue_sel_ = value;
      return;
    case mmio::kQueueNum:
      if (queue_config_writable()) selected_queue()->size = static_cast<uint16_t>(value > 0xffff ? 0 : value);
      return;
    case mmio::kQueueReady:
      if (Queue* q = selected_queue(); q != nullptr && (status_ & kStatusFeaturesOk) && !(status_ & kStatusDriverOk)) {
        // A queue only becomes ready with a configuration that is valid in guest memory.
        q->ready = value == 1 && q->validate(mem_).ok();
      }
      return;
    case mmio::kQueueDescLow:
    case mmio::kQueueDescHigh:
    case mmio::kQueueDriverLow:
    case mmio::kQueueDriverHigh:
    case mmio::kQueueDeviceLow:
    case mmio::kQueueDeviceHigh: {
      if (!queue_config_writable()) return;
      Queue* q = selected_queue();
      uint64_t* field = offset < mmio::kQueueDriverLow   ? &q->desc_table
                        : offset < mmio::kQueueDeviceLow ? &q->avail_ring
                                                         : &q->used_ring;
      const bool high = (offset & 4) != 0;
      *field = high ? (*field & 0xffff'ffffull) | (static_cast<uint64_t>(value) << 32)
                    : (*field & ~0xffff'ffffull) | value;
      return;
    }
    // QueueNotify and InterruptAck are handled in write(), without the device mutex.
    case mmio::kStatus:
      set_status(value);
      return;
    default:
      return;  // read-only or reserved
  }
}

void MmioTransport::set_status(uint32_t value) {
  if (value == 0) {
    reset_device();
    return;
  }
  if (value == (status_ | kStatusFailed)) {
    status_ = value;
    return;
  }
  bool allowed = false;
  for (const auto& t : kValidTransitions) allowed |= t.from == status_ && t.to == value;
  if (!allowed) return;

  if (value == kFeaturesOk) {
    const uint64_t offered = device_->device_features() | kFeatureVersion1;
    // Refuse (leave FEATURES_OK clear, §3.1.1 step 6) features we did not offer, and legacy
    // drivers: this transport is modern only.
    if ((driver_features_ & ~offered) != 0 || !(driver_features_ & kFeatureVersion1)) return;
    device_->set_acked_features(driver_features_);
  }
  if (value == kRunning) {
    for (auto& q : device_->queues()) {
      if (q.ready && !q.validate(mem_).ok()) {
        status_ |= kStatusNeedsReset;
        return;
      }
    }
    if (!device_->activate(mem_, *this).ok()) {
      status_ |= kStatusNeedsReset;
      config_changed();  // tells the driver to look at the status (§2.1.2)
      return;
    }
  }
  status_ = value;
}

void MmioTransport::reset_device() {
  device_->reset();
  for (auto& q : device_->queues()) q.reset();
  device_->set_acked_features(0);
  status_ = 0;
  device_features_sel_ = driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  interrupt_status_.store(0);
}

void MmioTransport::used_buffer() {
  interrupt_status_.fetch_or(mmio::kInterruptUsedBuffer);
  raise_irq_();
}

void MmioTransport::needs_reset() {
  status_ |= kStatusNeedsReset;
  config_changed();
}

void MmioTransport::config_changed() {
  interrupt_status_.fetch_or(mmio::kInterruptConfigChange);
  raise_irq_();
}

std::vector<uint8_t> MmioTransport::save() const {
  std::lock_guard guard(device_->lock());
  StateWriter out(kTransportStateTag, kTransportStateVersion);
  out.put(device_->device_id());
  out.put(status_);
  out.put(device_features_sel_);
  out.put(driver_features_sel_);
  out.put(driver_features_);
  out.put(queue_sel_);
  out.put(interrupt_status_.load());
  out.put(device_->acked_features());
  out.put(static_cast<uint32_t>(device_->queues().size()));
  for (const auto& q : device_->queues()) q.save(out);
  StateWriter dev(0, 0);
  device_->save(dev);
  out.put_bytes(dev.take());
  return out.take();
}

Status MmioTransport::restore(std::span<const uint8_t> state) {
  // The state is untrusted input (a snapshot file): everything is parsed into locals and
  // checked first; the transport, the queues and the device change only once all of it is
  // known good, so a refused state leaves the device as it was.
  std::lock_guard guard(device_->lock());
  StateReader in(state);
  NV_TRY(in.expect_header(kTransportStateTag, kTransportStateVersion, "virtio-mmio transport"));
  uint32_t device_id = 0, queue_count = 0, irq = 0;
  uint32_t status = 0, device_features_sel = 0, driver_features_sel = 0, queue_sel = 0;
  uint64_t driver_features = 0, acked = 0;
  if (!in.get(device_id) || device_id != device_->device_id()) {
    return plain_error("ESTATE", std::string("saved virtio device is not a ") + device_->name());
  }
  if (!in.get(status) || !in.get(device_features_sel) || !in.get(driver_features_sel) || !in.get(driver_features) ||
      !in.get(queue_sel) || !in.get(irq) || !in.get(acked) || !in.get(queue_count) ||
      queue_count != device_->queues().size()) {
    return truncated_state("virtio-mmio transport");
  }
  std::vector<Queue> queues = device_->queues();  // copies: restored and checked before use
  for (auto& q : queues) {
    NV_TRY(q.restore(in));
  }
  std::vector<uint8_t> dev_bytes;
  if (!in.get_bytes(dev_bytes, kMaxDeviceStateBytes) || !in.at_end()) return truncated_state("virtio-mmio transport");

  // A status the state machine can reach: one of its steps, maybe with FAILED or NEEDS_RESET.
  const uint32_t step = status & ~(kStatusFailed | kStatusNeedsReset);
  if (step != 0 && step != kAck && step != kAckDriver && step != kFeaturesOk && step != kRunning) {
    return plain_error("ESTATE", "saved virtio status " + std::to_string(status) + " is not one a driver can reach");
  }
  const uint64_t offered = device_->device_features() | kFeatureVersion1;
  if ((acked & ~offered) != 0 || (driver_features & ~offered) != 0) {
    return plain_error("ESTATE", std::string("saved virtio features were not offered by ") + device_->name());
  }
  if ((irq & ~(mmio::kInterruptUsedBuffer | mmio::kInterruptConfigChange)) != 0) {
    return plain_error("ESTATE", "saved virtio interrupt status has unknown bits");
  }
  const bool running = (status & kStatusDriverOk) && !(status & kStatusNeedsReset);
  for (const auto& q : queues) {
    if (q.ready) NV_TRY(q.validate(mem_));
  }

  StateReader dev(dev_bytes);
  uint32_t zero_tag = 0, zero_version = 0;
  // The device's own restore parses before it changes anything (virtio_device.h).
  if (!dev.get(zero_tag) || !dev.get(zero_version)) return truncated_state(device_->name());
  NV_TRY(device_->restore(dev));
  device_->reset();
  device_->queues() = std::move(queues);
  status_ = status;
  device_features_sel_ = device_features_sel;
  driver_features_sel_ = driver_features_sel;
  driver_features_ = driver_features;
  queue_sel_ = queue_sel;
  device_->set_acked_features(acked);
  interrupt_status_.store(irq);
  if (running) NV_TRY(device_->activate(mem_, *this));
  return {};
}

}  // namespace nodevisor::vmm::virtio
