// libFuzzer target: a snapshot's state file (vmm/snapshot), as a corrupted disk or a crafted
// file would present it. The first byte picks the way in: 0 — the input is a whole state file
// (header, size cap and checksum checks); otherwise the rest is a payload sealed with a valid
// header, so the fuzzer reaches the VM-state parser behind the checksum. The parser must never
// crash or read out of bounds, and whatever it accepts must encode back to the same bytes
// (every field is kept as it was read, nothing is silently dropped).
#include <cstdint>
#include <cstring>

#include "fuzz/fuzz_guest.h"
#include "vmm/snapshot/state_file.h"
#include "vmm/snapshot/vm_snapshot.h"

using namespace nodevisor;
using namespace nodevisor::vmm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t mode = in.take<uint8_t>();
  const auto rest = in.rest();
  std::vector<uint8_t> file;
  if (mode == 0) {
    file.assign(rest.begin(), rest.end());
  } else {
    file = snapshot::seal_state_file(rest);
  }
  auto payload = snapshot::open_state_file(file, "/fuzz/state");
  if (!payload.ok()) {
    if (payload.error().code != "EBADSNAPSHOT" || payload.error().path != "/fuzz/state") __builtin_trap();
    return 0;
  }
  auto snap = snapshot::decode_vm_snapshot(payload.value(), "/fuzz/state");
  if (!snap.ok()) {
    if (snap.error().code != "EBADSNAPSHOT") __builtin_trap();
    return 0;
  }
  const std::vector<uint8_t> again = snapshot::encode_vm_snapshot(snap.value());
  if (again.size() != payload.value().size() ||
      std::memcmp(again.data(), payload.value().data(), again.size()) != 0) {
    __builtin_trap();
  }
  return 0;
}
