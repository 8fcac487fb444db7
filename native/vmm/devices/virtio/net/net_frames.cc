#include "vmm/devices/virtio/net/net_frames.h"

#include "vmm/devices/virtio/net/net_device.h"

namespace nodevisor::vmm::virtio {

namespace {
constexpr size_t kNumBuffersOffset = 10;
}  // namespace

uint32_t deliver_rx_frame(GuestMemory& mem, const DescriptorChain& chain, std::span<uint8_t> frame) {
  if (!chain.readable.empty() || frame.size() < kNetHdrBytes || chain.writable_bytes < frame.size()) return 0;
  // Without VIRTIO_NET_F_MRG_RXBUF a frame always fits one chain: num_buffers is 1. The tap
  // writes only the first 10 bytes of the header, so this is ours to fill in any case.
  frame[kNumBuffersOffset] = 1;
  frame[kNumBuffersOffset + 1] = 0;
  ChainWriter out(mem, chain.writable);
  if (!out.write(frame).ok()) return 0;
  return static_cast<uint32_t>(frame.size());  // <= kNetHdrBytes + kNetMaxFrameBytes
}

bool read_tx_frame(const GuestMemory& mem, const DescriptorChain& chain, std::vector<uint8_t>& out) {
  out.clear();
  if (!chain.writable.empty() || chain.readable_bytes < kNetHdrBytes ||
      chain.readable_bytes > uint64_t{kNetHdrBytes} + kNetMaxFrameBytes) {
    return false;
  }
  out.resize(static_cast<size_t>(chain.readable_bytes));
  ChainReader in(mem, chain.readable);
  if (!in.read(out).ok()) {
    out.clear();
    return false;
  }
  return true;
}

}  // namespace nodevisor::vmm::virtio
