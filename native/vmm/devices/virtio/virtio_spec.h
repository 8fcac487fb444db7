// Constants and guest-visible layouts of the virtio 1.x specification that nodevisor uses:
// device status bits, feature bits, the split virtqueue's structures and the virtio-mmio
// (version 2) register map. Values are ABI, written down once here.
//
// Runs on: nothing (declarations only).
#pragma once

#include <cstdint>

namespace nodevisor::vmm::virtio {

// Device status (virtio 1.2 §2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 64;
inline constexpr uint32_t kStatusFailed = 128;

// Transport-independent feature bits (§6).
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;
inline constexpr uint64_t kFeatureRingIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureRingEventIdx = 1ull << 29;

// Device ids (§5).
inline constexpr uint32_t kDeviceIdBlock = 2;
inline constexpr uint32_t kDeviceIdConsole = 3;

// Split virtqueue descriptor flags (§2.7.5).
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;

// The largest queue nodevisor offers; a power of two as the split ring requires.
inline constexpr uint16_t kMaxQueueSize = 256;

struct Descriptor {  // 16 bytes, 16-byte aligned in guest memory
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

struct UsedElement {  // 8 bytes
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(UsedElement) == 8);

// Ring byte offsets. avail: flags u16, idx u16, ring[size] u16, used_event u16.
// used: flags u16, idx u16, ring[size] UsedElement, avail_event u16.
inline constexpr uint64_t kRingIdxOffset = 2;
inline constexpr uint64_t kRingEntriesOffset = 4;
inline constexpr uint64_t kDescTableAlign = 16;
inline constexpr uint64_t kAvailRingAlign = 2;
inline constexpr uint64_t kUsedRingAlign = 4;

inline constexpr uint64_t desc_table_size(uint16_t n) { return 16ull * n; }
inline constexpr uint64_t avail_ring_size(uint16_t n) { return 6ull + 2ull * n; }
inline constexpr uint64_t used_ring_size(uint16_t n) { return 6ull + 8ull * n; }

// virtio-mmio version 2 registers (§4.2.2), offsets from the device's base.
namespace mmio {
inline constexpr uint64_t kMagicValue = 0x000;  // "virt"
inline constexpr uint64_t kVersion = 0x004;
inline constexpr uint64_t kDeviceId = 0x008;
inline constexpr uint64_t kVendorId = 0x00c;
inline constexpr uint64_t kDeviceFeatures = 0x010;
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kDriverFeatures = 0x020;
inline constexpr uint64_t kDriverFeaturesSel = 0x024;
inline constexpr uint64_t kQueueSel = 0x030;
inline constexpr uint64_t kQueueNumMax = 0x034;
inline constexpr uint64_t kQueueNum = 0x038;
inline constexpr uint64_t kQueueReady = 0x044;
inline constexpr uint64_t kQueueNotify = 0x050;
inline constexpr uint64_t kInterruptStatus = 0x060;
inline constexpr uint64_t kInterruptAck = 0x064;
inline constexpr uint64_t kStatus = 0x070;
inline constexpr uint64_t kQueueDescLow = 0x080;
inline constexpr uint64_t kQueueDescHigh = 0x084;
inline constexpr uint64_t kQueueDriverLow = 0x090;
inline constexpr uint64_t kQueueDriverHigh = 0x094;
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kConfigGeneration = 0x0fc;
inline constexpr uint64_t kConfig = 0x100;

inline constexpr uint32_t kMagic = 0x74726976;
inline constexpr uint32_t kVersion2 = 2;
inline constexpr uint32_t kVendor = 0x4e565356;  // "VSVN": nodevisor

inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

// Size of one device's window; devices are placed this far apart.
inline constexpr uint64_t kWindowSize = 0x1000;
}  // namespace mmio

}  // namespace nodevisor::vmm::virtio
