#include "vmm/devices/legacy/vm_generation.h"

#include <sys/random.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {

constexpr uint32_t kStateTag = state_tag("VGEN");
// Version 2 added the address; version 1 blobs (no address) still restore.
constexpr uint32_t kStateVersion = 2;

uint64_t draw() {
  uint64_t v = 0;
  // getrandom on 8 bytes does not block once the pool is initialised (it is, long before a
  // VMM runs); should it fail anyway, a counter mixed with the clock still differs per VM.
  if (getrandom(&v, sizeof v, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof v)) {
    static std::atomic<uint64_t> counter{0};
    v = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9e3779b97f4a7c15ull ^
        counter.fetch_add(1);
  }
  // 0 and all ones read like "no device"; keep clear of both.
  if (v == 0 || v == ~0ull) v = 0x6e76'6765'6e00'0001ull;
  return v;
}

}  // namespace

VmGeneration::VmGeneration() : value_(draw()) {}

void VmGeneration::read(uint64_t offset, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    data[i] = at < kPortCount ? static_cast<uint8_t>(value_ >> (8 * at)) : 0xff;
  }
}

void VmGeneration::write(uint64_t, std::span<const uint8_t>) {}

std::vector<uint8_t> VmGeneration::save() const {
  StateWriter w(kStateTag, kStateVersion);
  w.put(value_);
  w.put(address_);
  return w.take();
}

Status VmGeneration::restore(std::span<const uint8_t> state) {
  StateReader r(state);
  uint64_t saved = 0, address = 0;
  if (r.expect_header(kStateTag, 1, "VM generation").ok()) {
    if (!r.get(saved) || !r.at_end()) return truncated_state("VM generation");
  } else {
    StateReader v2(state);
    NV_TRY(v2.expect_header(kStateTag, kStateVersion, "VM generation"));
    if (!v2.get(saved) || !v2.get(address) || !v2.at_end()) return truncated_state("VM generation");
    if (address % 8 != 0) return plain_error("ESTATE", "the VM generation address is not 8-byte aligned");
  }
  address_ = address;
  return {};
}

}  // namespace nodevisor::vmm
