// libFuzzer target: a split virtqueue whose configuration, rings and descriptors are all
// fuzzer-controlled. The device side pops every chain it is offered and walks its buffers
// with ChainReader/ChainWriter; nothing may read or write outside guest memory (ASan), hang
// (a loop must be cut) or overflow (UBSan).
#include "fuzz/fuzz_guest.h"
#include "vmm/devices/virtio/queue.h"

using namespace nodevisor;
using namespace nodevisor::vmm::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  auto& mem = fuzz::fuzz_memory();
  Queue q(kMaxQueueSize);
  q.size = in.take<uint16_t>();
  q.desc_table = in.take<uint32_t>() % (fuzz::kFuzzRamBytes + 0x1000);
  q.avail_ring = in.take<uint32_t>() % (fuzz::kFuzzRamBytes + 0x1000);
  q.used_ring = in.take<uint32_t>() % (fuzz::kFuzzRamBytes + 0x1000);
  const uint64_t fill_at = in.take<uint16_t>() * 16ull;
  fuzz::fill_memory(mem, in.rest(), fill_at);
  if (!q.validate(mem).ok()) return 0;
  q.ready = true;
  std::vector<uint8_t> scratch(4096);
  // Bounded: at most one queue's worth of pops per input.
  for (int i = 0; i < kMaxQueueSize + 1; i++) {
    auto popped = q.pop(mem);
    if (!popped || !popped.value()) break;
    auto& entry = *popped.value();
    if (entry.chain) {
      ChainReader reader(mem, entry.chain->readable);
      while (reader.remaining() > 0) {
        const size_t n = reader.remaining() < scratch.size() ? reader.remaining() : scratch.size();
        if (!reader.read(std::span<uint8_t>(scratch.data(), n)).ok()) break;
      }
      ChainWriter writer(mem, entry.chain->writable);
      while (writer.remaining() > 0) {
        const size_t n = writer.remaining() < scratch.size() ? writer.remaining() : scratch.size();
        if (!writer.write(std::span<const uint8_t>(scratch.data(), n)).ok()) break;
      }
    }
    (void)q.add_used(mem, entry.head, 0);
  }
  return 0;
}
