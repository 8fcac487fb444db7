// A driver for one virtio-mmio device in tests: guest memory, the transport, an interrupt
// counter, and the register-level handshake a guest driver performs.
#pragma once

#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "vmm/devices/virtio/mmio_transport.h"
#include "vmm/devices/virtio/testing/mock_driver.h"
#include "vmm/memory/guest_memory.h"

namespace nodevisor::tests {

using namespace nodevisor::vmm;
using namespace nodevisor::vmm::virtio;
using nodevisor::vmm::virtio::testing::MockBuffer;
using nodevisor::vmm::virtio::testing::MockQueue;

inline constexpr uint64_t kGuestRamBytes = 16 * 1024 * 1024;

struct VirtioHarness {
  GuestMemory mem;
  std::shared_ptr<VirtioDevice> device;
  std::unique_ptr<MmioTransport> transport;
  std::shared_ptr<std::atomic<int>> irqs = std::make_shared<std::atomic<int>>(0);

  explicit VirtioHarness(std::shared_ptr<VirtioDevice> dev)
      : mem(std::move(GuestMemory::create(kGuestRamBytes)).value()), device(std::move(dev)) {
    transport = std::make_unique<MmioTransport>(device, mem, [irqs = irqs] { irqs->fetch_add(1); });
  }

  // The device's worker may still be finishing its last step (raising the interrupt for the
  // used entry the test just saw): stop and reset the device as DeviceManager::shut_down does,
  // before the transport and guest memory go (ThreadSanitizer found this).
  ~VirtioHarness() { device->stop_and_reset(); }
  VirtioHarness(const VirtioHarness&) = delete;
  VirtioHarness& operator=(const VirtioHarness&) = delete;

  uint32_t reg(uint64_t offset) {
    uint8_t b[4];
    transport->read(offset, b);
    uint32_t v;
    std::memcpy(&v, b, 4);
    return v;
  }
  void set(uint64_t offset, uint32_t value) {
    uint8_t b[4];
    std::memcpy(b, &value, 4);
    transport->write(offset, b);
  }

  // ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether FEATURES_OK stuck.
  bool negotiate(uint64_t features) {
    set(mmio::kStatus, 0);
    set(mmio::kStatus, kStatusAcknowledge);
    set(mmio::kStatus, kStatusAcknowledge | kStatusDriver);
    set(mmio::kDriverFeaturesSel, 0);
    set(mmio::kDriverFeatures, static_cast<uint32_t>(features));
    set(mmio::kDriverFeaturesSel, 1);
    set(mmio::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    set(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    return (reg(mmio::kStatus) & kStatusFeaturesOk) != 0;
  }

  void setup_queue(uint32_t index, const MockQueue& q) {
    set(mmio::kQueueSel, index);
    set(mmio::kQueueNum, q.size());
    set(mmio::kQueueDescLow, static_cast<uint32_t>(q.desc_table()));
    set(mmio::kQueueDescHigh, static_cast<uint32_t>(q.desc_table() >> 32));
    set(mmio::kQueueDriverLow, static_cast<uint32_t>(q.avail_ring()));
    set(mmio::kQueueDriverHigh, static_cast<uint32_t>(q.avail_ring() >> 32));
    set(mmio::kQueueDeviceLow, static_cast<uint32_t>(q.used_ring()));
    set(mmio::kQueueDeviceHigh, static_cast<uint32_t>(q.used_ring() >> 32));
    set(mmio::kQueueReady, 1);
  }

  // The whole handshake with VERSION_1 only; returns whether DRIVER_OK stuck.
  bool bring_up(const std::vector<const MockQueue*>& queues, uint64_t extra_features = 0) {
    if (!negotiate(kFeatureVersion1 | extra_features)) return false;
    for (size_t i = 0; i < queues.size(); i++) setup_queue(static_cast<uint32_t>(i), *queues[i]);
    set(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    return (reg(mmio::kStatus) & kStatusDriverOk) != 0;
  }

  void notify(uint32_t queue) { set(mmio::kQueueNotify, queue); }

  void write_bytes(uint64_t addr, const void* data, size_t n) {
    (void)mem.write(addr, std::span<const uint8_t>(static_cast<const uint8_t*>(data), n));
  }
  std::vector<uint8_t> read_bytes(uint64_t addr, size_t n) {
    std::vector<uint8_t> out(n);
    (void)mem.read(addr, out);
    return out;
  }
};

}  // namespace nodevisor::tests
