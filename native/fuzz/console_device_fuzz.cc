// libFuzzer target: the virtio-console device driven by a hostile driver. The input places
// both queues (addresses, sizes) and fills guest memory (descriptors, rings, buffers); the host
// side writes input and reads output around each doorbell. The device must never touch memory
// outside the guest, never buffer more than its bounds, and stop serving a broken ring.
#include "fuzz/fuzz_guest.h"
#include "vmm/devices/virtio/console/console_device.h"
#include "vmm/devices/virtio/mmio_transport.h"

using namespace nodevisor;
using namespace nodevisor::vmm::virtio;

namespace {

void set(MmioTransport& t, uint64_t offset, uint32_t value) {
  uint8_t b[4];
  std::memcpy(b, &value, 4);
  t.write(offset, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  auto& mem = fuzz::fuzz_memory();
  struct QueueLayout {
    uint32_t desc, avail, used;
    uint16_t size;
  } layout[2];
  for (auto& q : layout) {
    q.desc = in.take<uint32_t>() % fuzz::kFuzzRamBytes & ~15u;
    q.avail = in.take<uint32_t>() % fuzz::kFuzzRamBytes & ~1u;
    q.used = in.take<uint32_t>() % fuzz::kFuzzRamBytes & ~3u;
    q.size = static_cast<uint16_t>(1u << (in.take<uint8_t>() % 9));  // 1..256
  }
  const uint8_t script = in.take<uint8_t>();
  const uint16_t host_bytes = in.take<uint16_t>();
  fuzz::fill_memory(mem, in.rest(), 0);

  auto dev = std::move(ConsoleDevice::create("fuzz", {})).value();
  MmioTransport t(dev, mem, [] {});
  set(t, mmio::kStatus, kStatusAcknowledge);
  set(t, mmio::kStatus, kStatusAcknowledge | kStatusDriver);
  set(t, mmio::kDriverFeaturesSel, 1);
  set(t, mmio::kDriverFeatures, 1);  // VERSION_1
  set(t, mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  for (uint32_t i = 0; i < 2; i++) {
    set(t, mmio::kQueueSel, i);
    set(t, mmio::kQueueNum, layout[i].size);
    set(t, mmio::kQueueDescLow, layout[i].desc);
    set(t, mmio::kQueueDriverLow, layout[i].avail);
    set(t, mmio::kQueueDeviceLow, layout[i].used);
    set(t, mmio::kQueueReady, 1);
  }
  set(t, mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);

  std::vector<uint8_t> input(host_bytes, 'i');
  size_t out_total = 0;
  // A restore's agent input: queued, then put into the receive buffers on this thread, as
  // vCPU 0 (or the restoring worker) does before the guest runs (Vm::complete_restore).
  if (script & 0x20) {
    (void)dev->queue_input(input);
    dev->fill_receive_buffers();
  }
  for (int step = 0; step < 4; step++) {
    if (script & (1 << step)) (void)dev->write_input(input);
    // What the worker does for each doorbell, here, so a crash reproduces.
    (void)dev->serve_doorbell(static_cast<uint16_t>(step % 3));
    out_total += dev->read_output((script & 0x10) ? 100 : SIZE_MAX).size();
  }
  dev->drain_final();
  out_total += dev->read_output(SIZE_MAX).size();
  // Never more than the guest's chains could carry through the bounded buffer.
  if (out_total > 4 * kConsoleBufferBytes + 2 * kMaxTxChainBytes) __builtin_trap();
  dev->stop_and_reset();  // the worker is done with the transport before it goes
  return 0;
}
