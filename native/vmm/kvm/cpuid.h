// The CPUID a vCPU sees: KVM's supported table, adjusted per vCPU (APIC ids, topology counts,
// the hypervisor bit). Pure function of its inputs, so it can be unit-tested and fuzzed.
//
// Runs on: the VM-building thread.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace nodevisor::vmm {

std::vector<kvm_cpuid_entry2> vcpu_cpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                         uint32_t vcpu_index, uint32_t vcpu_count);

}  // namespace nodevisor::vmm
