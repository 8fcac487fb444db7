// libFuzzer target: a sequence of register reads and writes (any offset, any width) on the
// virtio-mmio transport of a block slot, as a hostile driver would make them. The state
// machine, feature negotiation and queue configuration must never crash or accept a queue
// outside guest memory.
#include "fuzz/fuzz_guest.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/mmio_transport.h"

using namespace nodevisor;
using namespace nodevisor::vmm::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  auto& mem = fuzz::fuzz_memory();
  (void)mem.fill_zero(0, fuzz::kFuzzRamBytes);
  auto dev = std::move(BlockDevice::create("fuzz", false, std::nullopt, "s")).value();
  MmioTransport transport(dev, mem, [] {});
  for (int op = 0; op < 256 && !in.empty(); op++) {
    const uint8_t kind = in.take<uint8_t>();
    const uint64_t offset = in.take<uint16_t>() % 0x1000;
    const size_t width = std::size_t{1} << (kind >> 1 & 3);  // 1, 2, 4, 8 bytes
    uint8_t buf[8] = {};
    if (kind & 1) {
      const uint64_t value = in.take<uint64_t>();
      std::memcpy(buf, &value, sizeof value);
      transport.write(offset, std::span<const uint8_t>(buf, width));
    } else {
      transport.read(offset, std::span<uint8_t>(buf, width));
    }
  }
  // Whatever state the driver reached, a ready queue must lie in guest memory.
  for (auto& q : dev->queues()) {
    if (q.ready && !q.validate(mem).ok()) __builtin_trap();
  }
  return 0;
}
