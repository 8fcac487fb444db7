// Moving one frame between a descriptor chain and a host buffer, for virtio-net. Kept apart
// from the device so the fuzz target (native/fuzz/net_frames_fuzz.cc) drives exactly this
// code with hostile chains.
//
// A frame on either side starts with the 12-byte virtio_net_hdr, passed through unchanged
// except num_buffers, which the device sets to 1 on receive (no mergeable buffers).
//
// Runs on: the net device's worker thread (or the fuzzer's), device mutex held.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/devices/virtio/queue.h"

namespace nodevisor::vmm::virtio {

// Copies `frame` (header included) into the chain's writable buffers. Returns the used length,
// or 0 when the chain has readable buffers, too little room, or a buffer could not be written
// (the frame is then dropped; the driver recycles a zero-length buffer).
uint32_t deliver_rx_frame(GuestMemory& mem, const DescriptorChain& chain, std::span<uint8_t> frame);

// Reads a transmit chain (header + frame) into `out`, which it resizes. False (and `out`
// cleared) when the chain has writable buffers, is shorter than a header, or longer than a
// header plus kNetMaxFrameBytes.
bool read_tx_frame(const GuestMemory& mem, const DescriptorChain& chain, std::vector<uint8_t>& out);

}  // namespace nodevisor::vmm::virtio
