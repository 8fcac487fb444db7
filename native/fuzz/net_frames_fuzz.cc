// libFuzzer target: virtio-net's frame paths with a fuzzer-made descriptor chain. One input
// is a chain (as Queue::pop hands them out: buffers inside RAM, readable before writable),
// a frame the "tap" delivers, and guest memory. deliver_rx_frame must write only into the
// chain's writable buffers and only when the whole frame fits; read_tx_frame must accept only
// a readable chain between a header and a header plus the largest frame.
#include "fuzz/fuzz_guest.h"
#include "vmm/devices/virtio/net/net_device.h"
#include "vmm/devices/virtio/net/net_frames.h"

using namespace nodevisor;
using namespace nodevisor::vmm::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  auto& mem = fuzz::fuzz_memory();
  DescriptorChain chain = fuzz::take_chain(in, mem);
  const uint32_t frame_len = in.take<uint16_t>() + (in.take<uint8_t>() & 1 ? 0x10000u : 0u);
  std::vector<uint8_t> frame(frame_len, 0x5a);
  fuzz::fill_memory(mem, in.rest(), 0);

  const uint32_t used = deliver_rx_frame(mem, chain, frame);
  if (used != 0 && (used != frame.size() || frame.size() < kNetHdrBytes || used > chain.writable_bytes)) __builtin_trap();

  std::vector<uint8_t> out;
  const bool ok = read_tx_frame(mem, chain, out);
  if (ok && (out.size() != chain.readable_bytes || out.size() < kNetHdrBytes ||
             out.size() > kNetHdrBytes + kNetMaxFrameBytes || !chain.writable.empty())) {
    __builtin_trap();
  }
  if (!ok && !out.empty()) __builtin_trap();
  return 0;
}
