#include "vmm/kvm/cpuid.h"

namespace nodevisor::vmm {

namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheTopology = 0x4;
constexpr uint32_t kLeafExtendedTopology = 0xb;
constexpr uint32_t kLeafExtendedTopologyV2 = 0x1f;
constexpr uint32_t kFeatureEcxHypervisor = 1u << 31;
constexpr uint32_t kFeatureEdxHyperThreading = 1u << 28;

}  // namespace

std::vector<kvm_cpuid_entry2> vcpu_cpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                         uint32_t vcpu_index, uint32_t vcpu_count) {
  std::vector<kvm_cpuid_entry2> entries = supported;
  for (kvm_cpuid_entry2& entry : entries) {
    switch (entry.function) {
      case kLeafFeatures:
        // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package, EBX[15:8]
        // CLFLUSH line size in 8-byte units (keep the host's).
        entry.ebx = (entry.ebx & 0x0000ffffu) | (vcpu_index << 24) | ((vcpu_count & 0xff) << 16);
        entry.ecx |= kFeatureEcxHypervisor;
        if (vcpu_count > 1) {
          entry.edx |= kFeatureEdxHyperThreading;
        } else {
          entry.edx &= ~kFeatureEdxHyperThreading;
        }
        break;
      case kLeafCacheTopology:
        // EAX[31:26]: cores per package - 1. One package, one core per vCPU.
        entry.eax = (entry.eax & 0x03ffffffu) | (((vcpu_count - 1) & 0x3f) << 26);
        break;
      case kLeafExtendedTopology:
      case kLeafExtendedTopologyV2:
        // EDX: this vCPU's x2APIC id, on every sub-leaf. Level 0 = SMT (1 thread/core),
        // level 1 = core (vcpu_count cores).
        entry.edx = vcpu_index;
        if (entry.index == 0) {
          entry.ebx = 1;
        } else if (entry.index == 1) {
          entry.ebx = vcpu_count;
        }
        break;
      default:
        break;
    }
  }
  return entries;
}

}  // namespace nodevisor::vmm
