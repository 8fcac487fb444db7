// libFuzzer target: every device-level restore on untrusted bytes (a snapshot file is input a
// user may be handed). The first byte picks the device: the virtio-mmio transport of a block
// slot or of the console (with their queues and device state), or a legacy device (the 8250
// UART, the wait, debug, exit ports, the i8042). A refused state must leave the device as it
// was (its saved bytes unchanged); an accepted one must save again and restore again, and a
// running virtio device's ready queues must lie in guest memory.
#include <chrono>

#include "fuzz/fuzz_guest.h"
#include "vmm/devices/legacy/debug_port.h"
#include "vmm/devices/legacy/exit_port.h"
#include "vmm/devices/legacy/i8042.h"
#include "vmm/devices/legacy/serial_8250.h"
#include "vmm/devices/legacy/wait_port.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/console/console_device.h"
#include "vmm/devices/virtio/mmio_transport.h"

using namespace nodevisor;
using namespace nodevisor::vmm;
using namespace nodevisor::vmm::virtio;

namespace {

void check(BusDevice& device, std::span<const uint8_t> state) {
  const std::vector<uint8_t> before = device.save();
  if (!device.restore(state).ok()) {
    if (device.save() != before) __builtin_trap();  // a refused state changed the device
    return;
  }
  const std::vector<uint8_t> again = device.save();
  if (!device.restore(again).ok()) __builtin_trap();  // what it saved, it must take back
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::span<const uint8_t> state(data + 1, size - 1);
  auto& mem = fuzz::fuzz_memory();
  (void)mem.fill_zero(0, fuzz::kFuzzRamBytes);
  switch (data[0] % 7) {
    case 0:
    case 1: {
      std::shared_ptr<VirtioDevice> dev;
      if (data[0] % 7 == 0) {
        dev = std::move(BlockDevice::create("fuzz", false, std::nullopt, "s")).value();
      } else {
        dev = std::move(ConsoleDevice::create("fuzz", {})).value();
      }
      MmioTransport t(dev, mem, [] {});
      check(t, state);
      if (t.status() & kStatusDriverOk) {
        for (auto& q : dev->queues()) {
          if (q.ready && !q.validate(mem).ok()) __builtin_trap();
        }
      }
      dev->stop_and_reset();  // a restored device may be serving: done before the transport goes
      break;
    }
    case 2: {
      Serial8250 serial([](uint8_t) {}, [] {});
      check(serial, state);
      break;
    }
    case 3: {
      WaitPort port(std::chrono::milliseconds(1));
      check(port, state);
      break;
    }
    case 4: {
      DebugPort port([](uint8_t, uint64_t) {});
      check(port, state);
      break;
    }
    case 5: {
      ExitPort port([](uint32_t) {});
      check(port, state);
      break;
    }
    case 6: {
      I8042 port([] {});
      check(port, state);
      break;
    }
  }
  return 0;
}
