// What a snapshot's state file holds (the payload inside state_file.h's container), as one
// plain struct, and its encoding: the VM's config, the host CPU it ran on, every vCPU, the
// irqchip (both PICs, the IOAPIC), the PIT, the KVM clock, every device's saved state, and
// the disks the hot-plug slots held. docs/snapshot-format.md describes the layout.
//
// `decode_vm_snapshot` is the parser of untrusted input (fuzzed by
// native/fuzz/snapshot_state_fuzz.cc): every count, size and string is bounded before use.
// The vCPU and device blobs are checked again by their own restore functions.
//
// Runs on: the thread that snapshots or restores (a libuv worker); pure functions.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sys/result.h"
#include "vmm/vm.h"

namespace nodevisor::vmm::snapshot {

// A disk a hot-plug slot held when the snapshot was taken; reopened by path on restore.
struct SnapshotDisk {
  uint32_t slot = 0;
  std::string path;
  std::string serial;
  bool read_only = false;
};

struct VmSnapshot {
  VmConfig config;
  // The probe's console output was coalesced by KVM (vm.cc): the restored VM does the same.
  bool coalesce_com1 = false;
  // Host CPU: the XSAVE area size and KVM's supported CPUID table where the snapshot was
  // taken. A restored vCPU sees exactly this CPUID again.
  uint32_t xsave_size = 0;
  std::vector<kvm_cpuid_entry2> cpuid;
  std::vector<std::vector<uint8_t>> vcpus;  // vstate/vcpu_state.h blobs, by index
  kvm_irqchip pic_master{};
  kvm_irqchip pic_slave{};
  kvm_irqchip ioapic{};
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
  std::vector<std::vector<uint8_t>> devices;  // BusDevice::save blobs, in the VM's device order
  std::vector<SnapshotDisk> disks;
  uint64_t generation = 0;  // the VM generation id of the VM that was saved (informational)
};

inline constexpr uint32_t kMaxCpuidEntries = 1024;
inline constexpr uint32_t kMaxDeviceBlobs = 64;
inline constexpr size_t kMaxPathBytes = 4096;

std::vector<uint8_t> encode_vm_snapshot(const VmSnapshot& snap);
// `path` (the state file) names the file in errors (EBADSNAPSHOT).
Result<VmSnapshot> decode_vm_snapshot(std::span<const uint8_t> payload, const std::string& path);

// Whether a snapshot taken on one host can run on this one: the same XSAVE size and CPU
// vendor, and every CPUID feature the guest was shown present here too.
Status check_host_cpu(const VmSnapshot& snap, uint32_t host_xsave_size,
                      const std::vector<kvm_cpuid_entry2>& host_cpuid, const std::string& path);

}  // namespace nodevisor::vmm::snapshot
