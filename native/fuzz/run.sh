#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz/ and runs each one:
# first over its regression inputs (test/fixtures/fuzz/<target>/), then a campaign with the
# arguments given (default -runs=20000). A crash is saved under build-fuzz/crashes/; fix it
# and keep the input as a regression file in test/fixtures/fuzz/<target>/.
#
#   npm run fuzz -- -runs=100000        npm run fuzz -- -max_total_time=60
set -euo pipefail
cd "$(dirname "$0")/../.."

CXX=${CLANGXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$CXX" ]; then
  echo "fuzz: clang++ is not installed (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-runs=20000)

out=build-fuzz
mkdir -p "$out/crashes"
FLAGS=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -D_GNU_SOURCE -Inative)
CORE=(native/vmm/memory/guest_memory.cc native/vmm/util/open_checked.cc
      native/vmm/devices/virtio/queue.cc native/vmm/devices/virtio/mmio_transport.cc
      native/vmm/devices/virtio/device_worker.cc native/vmm/devices/virtio/block/block_backend.cc
      native/vmm/devices/virtio/block/block_request.cc native/vmm/devices/virtio/block/block_device.cc
      native/vmm/devices/virtio/console/console_device.cc native/vmm/devices/legacy/serial_8250.cc
      native/vmm/devices/legacy/i8042.cc native/vmm/devices/legacy/debug_port.cc
      native/vmm/devices/legacy/exit_port.cc native/vmm/devices/legacy/wait_port.cc
      native/vmm/arch/x86_64/elf_loader.cc native/vmm/arch/x86_64/pvh_boot.cc native/vmm/arch/x86_64/bzimage.cc
      native/vmm/arch/x86_64/kernel_image.cc native/vmm/arch/x86_64/long_mode.cc native/vmm/arch/x86_64/memory_map.cc
      native/vmm/devices/virtio/net/net_frames.cc
      native/vmm/snapshot/state_file.cc native/vmm/snapshot/vm_snapshot.cc)
# The guest agent's input path (agent_*_fuzz.cc): no VMM code.
AGENT=(native/guest/protocol/json.cc native/guest/agent/channel.cc native/guest/agent/log.cc
       native/guest/agent/request.cc native/guest/agent/privileges.cc native/guest/agent/seccomp.cc
       native/guest/agent/storage.cc native/guest/agent/validate.cc)

status=0
for src in native/fuzz/*_fuzz.cc; do
  name=$(basename "$src" .cc)
  bin="$out/$name"
  srcs=("${CORE[@]}"); [[ $name == agent_* ]] && srcs=("${AGENT[@]}")
  if [ ! -x "$bin" ] || [ -n "$(find "$src" "${srcs[@]}" native/fuzz/fuzz_guest.h -newer "$bin" 2>/dev/null | head -1)" ]; then
    echo "fuzz: building $name"
    "$CXX" "${FLAGS[@]}" -o "$bin" "$src" "${srcs[@]}" -lpthread
  fi
  corpus="$out/corpus/$name"
  regress="test/fixtures/fuzz/$name"
  mkdir -p "$corpus" "$regress"
  if [ -n "$(ls -A "$regress")" ]; then
    echo "fuzz: $name regression inputs"
    "$bin" "$regress"/* >/dev/null 2>&1 || { echo "fuzz: $name FAILED on a regression input"; status=1; }
  fi
  echo "fuzz: $name ${args[*]}"
  if ! "$bin" "${args[@]}" -artifact_prefix="$out/crashes/$name-" "$corpus" "$regress" 2>"$out/$name.log"; then
    echo "fuzz: $name found a crash (see $out/$name.log and $out/crashes/)"
    tail -30 "$out/$name.log"
    status=1
  else
    grep -E '^(#[0-9]+|Done)' "$out/$name.log" | tail -1
  fi
done
exit $status
