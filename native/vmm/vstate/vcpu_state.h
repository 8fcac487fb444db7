// Save and restore of one vCPU's architectural state (registers, segment and control
// registers, FPU/SSE and the XSAVE area, XCRs, debug registers, local APIC, MP state, pending
// events, and the MSRs a guest relies on: TSC, PAT, MTRRs, kvmclock, syscall MSRs) as a
// tagged, versioned byte vector. The VM must be paused, and every in-flight exit completed,
// first. Restoring into a fresh vCPU of a new VM is what Vm::restore does for a snapshot.
//
// Runs on: the controlling thread, while the vCPU thread is paused (KVM allows vCPU ioctls
// from another thread when the vCPU is not in KVM_RUN).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/kvm/kvm_vcpu.h"
#include "sys/result.h"

namespace nodevisor::vmm {

Result<std::vector<uint8_t>> save_vcpu_state(const KvmVcpu& vcpu);
// A restore may load the state in two steps, the registers first and the rest later (a VM
// restored ahead of time: restore_spares.h). The timers step is what goes on counting
// once it is loaded (the TSC and its deadline, kvmclock, and the LAPIC when its timer counts
// down) and what must come after it (MP state, pending events): loaded early, the guest would
// find the time it waited.
enum class VcpuStateStep { kAll, kRegisters, kTimers };
// Every step checks the whole of `state` first.
Status restore_vcpu_state(KvmVcpu& vcpu, std::span<const uint8_t> state, VcpuStateStep step = VcpuStateStep::kAll);

// MSRs a boot vCPU starts with (fast strings on, MTRRs enabled with write-back default), as
// Firecracker sets them: a Linux guest that finds MTRRs off maps all memory uncached.
std::vector<kvm_msr_entry> boot_msrs();

}  // namespace nodevisor::vmm
