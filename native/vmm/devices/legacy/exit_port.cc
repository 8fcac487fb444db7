#include "vmm/devices/legacy/exit_port.h"

#include <cstring>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {
constexpr uint32_t kStateTag = state_tag("EXIT");
constexpr uint32_t kStateVersion = 1;
}  // namespace

void ExitPort::read(uint64_t, std::span<uint8_t> data) { std::memset(data.data(), 0xff, data.size()); }

void ExitPort::write(uint64_t, std::span<const uint8_t> data) {
  uint32_t code = 0;
  std::memcpy(&code, data.data(), std::min(data.size(), sizeof code));  // little-endian, any width
  on_exit_(code);
}

// Stateless; the tagged empty blob still lets a restore check it is the right component.
std::vector<uint8_t> ExitPort::save() const { return StateWriter(kStateTag, kStateVersion).take(); }

Status ExitPort::restore(std::span<const uint8_t> state) {
  StateReader r(state);
  NV_TRY(r.expect_header(kStateTag, kStateVersion, "exit port"));
  if (!r.at_end()) return truncated_state("exit port");
  return {};
}

}  // namespace nodevisor::vmm
