// The virtio-mmio transport against a driver that follows the rules and one that does not.
#include "tests/framework.h"
#include "tests/virtio_harness.h"
#include "vmm/devices/virtio/block/block_device.h"

namespace nodevisor::tests {

namespace {
std::shared_ptr<BlockDevice> empty_block_slot() {
  return std::move(BlockDevice::create("slot0", false, std::nullopt, "")).value();
}
}  // namespace

TEST(transport_identifies_a_modern_device) {
  VirtioHarness h(empty_block_slot());
  CHECK_EQ(h.reg(mmio::kMagicValue), mmio::kMagic);
  CHECK_EQ(h.reg(mmio::kVersion), 2u);
  CHECK_EQ(h.reg(mmio::kDeviceId), kDeviceIdBlock);
  h.set(mmio::kDeviceFeaturesSel, 1);
  CHECK(h.reg(mmio::kDeviceFeatures) & 1u);  // VERSION_1 is bit 32
  h.set(mmio::kDeviceFeaturesSel, 7);
  CHECK_EQ(h.reg(mmio::kDeviceFeatures), 0u);
}

TEST(transport_refuses_unoffered_features_and_legacy_drivers) {
  VirtioHarness h(empty_block_slot());
  CHECK(!h.negotiate(kFeatureVersion1 | kFeatureRingIndirectDesc));  // not offered
  CHECK(!h.negotiate(kBlockFeatureFlush));                             // no VERSION_1
  CHECK(h.negotiate(kFeatureVersion1 | kBlockFeatureFlush));
  CHECK_EQ(h.device->acked_features(), kFeatureVersion1 | kBlockFeatureFlush);
}

TEST(transport_ignores_status_transitions_out_of_order) {
  VirtioHarness h(empty_block_slot());
  h.set(mmio::kStatus, kStatusDriverOk);  // skipping every step
  CHECK_EQ(h.reg(mmio::kStatus), 0u);
  h.set(mmio::kStatus, kStatusAcknowledge);
  h.set(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  CHECK_EQ(h.reg(mmio::kStatus), kStatusAcknowledge);
  h.set(mmio::kStatus, kStatusAcknowledge | kStatusFailed);
  CHECK_EQ(h.reg(mmio::kStatus), kStatusAcknowledge | kStatusFailed);
  h.set(mmio::kStatus, 0);
  CHECK_EQ(h.reg(mmio::kStatus), 0u);
}

TEST(transport_accepts_queue_setup_only_between_features_ok_and_driver_ok) {
  VirtioHarness h(empty_block_slot());
  MockQueue q(h.mem, 0x10000, 16);
  h.set(mmio::kQueueSel, 0);
  h.set(mmio::kQueueNum, 16);  // too early: ignored
  CHECK_EQ(h.device->queues()[0].size, 0u);
  REQUIRE(h.bring_up({&q}));
  CHECK(h.device->activated());
  h.set(mmio::kQueueSel, 0);
  h.set(mmio::kQueueDescLow, 0x1234);  // too late: ignored
  CHECK_EQ(h.device->queues()[0].desc_table, q.desc_table());
  CHECK_EQ(h.reg(mmio::kQueueReady), 1u);
  h.set(mmio::kQueueSel, 5);  // no such queue
  CHECK_EQ(h.reg(mmio::kQueueNumMax), 0u);
}

TEST(transport_keeps_a_queue_with_bad_rings_not_ready) {
  VirtioHarness h(empty_block_slot());
  REQUIRE(h.negotiate(kFeatureVersion1));
  auto try_queue = [&](uint32_t num, uint64_t desc, uint64_t avail, uint64_t used) {
    h.set(mmio::kQueueSel, 0);
    h.set(mmio::kQueueNum, num);
    h.set(mmio::kQueueDescLow, static_cast<uint32_t>(desc));
    h.set(mmio::kQueueDescHigh, static_cast<uint32_t>(desc >> 32));
    h.set(mmio::kQueueDriverLow, static_cast<uint32_t>(avail));
    h.set(mmio::kQueueDriverHigh, static_cast<uint32_t>(avail >> 32));
    h.set(mmio::kQueueDeviceLow, static_cast<uint32_t>(used));
    h.set(mmio::kQueueDeviceHigh, static_cast<uint32_t>(used >> 32));
    h.set(mmio::kQueueReady, 1);
    return h.reg(mmio::kQueueReady);
  };
  CHECK_EQ(try_queue(3, 0x1000, 0x2000, 0x3000), 0u);                    // not a power of two
  CHECK_EQ(try_queue(512, 0x1000, 0x4000, 0x8000), 0u);                  // above QueueNumMax
  CHECK_EQ(try_queue(16, 0x1008, 0x2000, 0x3000), 0u);                   // misaligned table
  CHECK_EQ(try_queue(16, 0x1000, 0x2000, kGuestRamBytes - 8), 0u);       // used ring past RAM
  CHECK_EQ(try_queue(16, 0xffff'ffff'ffff'fff0ull, 0x2000, 0x3000), 0u);  // wraps around
  CHECK_EQ(try_queue(16, 0x1000, 0x2000, 0x3000), 1u);
}

TEST(transport_ignores_odd_register_widths_and_reset_clears_everything) {
  VirtioHarness h(empty_block_slot());
  uint8_t two[2] = {0xff, 0xff};
  h.transport->read(mmio::kMagicValue, two);
  CHECK_EQ(two[0], 0);
  h.transport->write(mmio::kStatus, std::span<const uint8_t>(two, 2));
  CHECK_EQ(h.reg(mmio::kStatus), 0u);
  MockQueue q(h.mem, 0x10000, 16);
  REQUIRE(h.bring_up({&q}));
  h.set(mmio::kStatus, 0);
  CHECK_EQ(h.reg(mmio::kStatus), 0u);
  CHECK(!h.device->activated());
  CHECK_EQ(h.device->queues()[0].size, 0u);
  CHECK_EQ(h.device->acked_features(), 0u);
}

TEST(transport_interrupt_status_is_acknowledged_bit_by_bit) {
  VirtioHarness h(empty_block_slot());
  h.transport->used_buffer();
  h.transport->config_changed();
  CHECK_EQ(h.reg(mmio::kInterruptStatus), 3u);
  CHECK_EQ(h.irqs->load(), 2);
  h.set(mmio::kInterruptAck, 1);
  CHECK_EQ(h.reg(mmio::kInterruptStatus), 2u);
}

TEST(transport_save_and_restore_round_trip) {
  VirtioHarness h(empty_block_slot());
  MockQueue q(h.mem, 0x10000, 16);
  REQUIRE(h.bring_up({&q}));
  auto state = h.transport->save();
  VirtioHarness h2(empty_block_slot());
  CHECK(h2.transport->restore(state).ok());
  CHECK_EQ(h2.reg(mmio::kStatus), h.reg(mmio::kStatus));
  CHECK_EQ(h2.device->queues()[0].desc_table, q.desc_table());
  CHECK(h2.device->activated());
  // Truncated or foreign state is refused.
  state.resize(state.size() / 2);
  VirtioHarness h3(empty_block_slot());
  CHECK(!h3.transport->restore(state).ok());
  std::vector<uint8_t> garbage(64, 0x5a);
  CHECK(!h3.transport->restore(garbage).ok());
}

}  // namespace nodevisor::tests
