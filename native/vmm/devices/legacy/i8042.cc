#include "vmm/devices/legacy/i8042.h"

#include <cstring>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {
constexpr uint64_t kCommandOffset = I8042::kCommandPort - I8042::kDataPort;
constexpr uint8_t kCommandPulseReset = 0xfe;
constexpr uint32_t kStateTag = state_tag("I842");
constexpr uint32_t kStateVersion = 1;
}  // namespace

void I8042::read(uint64_t, std::span<uint8_t> data) {
  // Status 0: output buffer empty, input buffer empty. Ports 0x61-0x63 (PC speaker, NMI
  // status) fall in the same range and read as 0 too.
  std::memset(data.data(), 0, data.size());
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != kCommandOffset || data.empty()) return;
  last_command_ = data[0];
  if (data[0] == kCommandPulseReset) reset_();
}

std::vector<uint8_t> I8042::save() const { return save_single(kStateTag, kStateVersion, last_command_.load()); }

Status I8042::restore(std::span<const uint8_t> state) {
  auto command = restore_single<uint8_t>(state, kStateTag, kStateVersion, "i8042");
  if (!command) return command.error();
  last_command_ = command.value();
  return {};
}

}  // namespace nodevisor::vmm
