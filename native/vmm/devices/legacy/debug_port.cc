#include "vmm/devices/legacy/debug_port.h"

#include <time.h>

#include <cstring>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {
constexpr uint32_t kStateTag = state_tag("DBG0");
constexpr uint32_t kStateVersion = 1;
}  // namespace

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

void DebugPort::read(uint64_t, std::span<uint8_t> data) {
  // Reading returns the last code, as QEMU's POST port does.
  std::memset(data.data(), last_code_.load(), data.size());
}

void DebugPort::write(uint64_t, std::span<const uint8_t> data) {
  if (data.empty()) return;
  const uint64_t now = monotonic_ns();
  const uint64_t origin = origin_ns_.load();
  last_code_ = data[0];
  on_phase_(data[0], now >= origin ? now - origin : 0);
}

std::vector<uint8_t> DebugPort::save() const { return save_single(kStateTag, kStateVersion, last_code_.load()); }

Status DebugPort::restore(std::span<const uint8_t> state) {
  auto code = restore_single<uint8_t>(state, kStateTag, kStateVersion, "debug port");
  if (!code) return code.error();
  last_code_ = code.value();
  return {};
}

}  // namespace nodevisor::vmm
