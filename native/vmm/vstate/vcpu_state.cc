#include "vmm/vstate/vcpu_state.h"

#include <memory>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {

constexpr uint32_t kStateTag = state_tag("VCPU");
// 2: adds the XSAVE area and the XCRs after the MSRs.
constexpr uint32_t kStateVersion = 2;

constexpr uint32_t kMsrSysenterCs = 0x174;
constexpr uint32_t kMsrSysenterEsp = 0x175;
constexpr uint32_t kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

// The MSRs saved with a vCPU. TSC is left to KVM's clock handling; EFER is in sregs.
constexpr uint32_t kSavedMsrs[] = {kMsrSysenterCs, kMsrSysenterEsp, kMsrSysenterEip, kMsrStar, kMsrLstar,
                                   kMsrCstar,      kMsrSyscallMask, kMsrKernelGsBase, kMsrMiscEnable,
                                   kMsrMtrrDefType};
constexpr uint32_t kMaxMsrs = 64;

}  // namespace

std::vector<kvm_msr_entry> boot_msrs() {
  std::vector<kvm_msr_entry> msrs(2);
  msrs[0].index = kMsrMiscEnable;
  msrs[0].data = 1;  // fast string operations
  msrs[1].index = kMsrMtrrDefType;
  msrs[1].data = (1u << 11) | 6;  // MTRRs enabled, default type write-back
  return msrs;
}

Result<std::vector<uint8_t>> save_vcpu_state(const KvmVcpu& vcpu) {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  kvm_lapic_state lapic{};
  kvm_mp_state mp{};
  kvm_vcpu_events events{};
  NV_TRY(vcpu.get_regs(regs));
  NV_TRY(vcpu.get_sregs(sregs));
  NV_TRY(vcpu.get_fpu(fpu));
  NV_TRY(vcpu.get_lapic(lapic));
  NV_TRY(vcpu.get_mp_state(mp));
  NV_TRY(vcpu.get_vcpu_events(events));
  std::vector<kvm_msr_entry> msrs;
  for (uint32_t index : kSavedMsrs) msrs.push_back(kvm_msr_entry{index, 0, 0});
  NV_TRY(vcpu.get_msrs(msrs));
  // The extended registers (AVX and beyond) and XCR0: kvm_fpu only has x87 and SSE, so a vCPU
  // restored into a fresh one (a clone) would otherwise lose them.
  auto xsave = std::make_unique<kvm_abi::XsaveArea>();
  kvm_xcrs xcrs{};
  NV_TRY(vcpu.get_xsave(*xsave));
  NV_TRY(vcpu.get_xcrs(xcrs));

  StateWriter w(kStateTag, kStateVersion);
  w.put(vcpu.index());
  w.put(regs);
  w.put(sregs);
  w.put(fpu);
  w.put(lapic);
  w.put(mp);
  w.put(events);
  w.put(static_cast<uint32_t>(msrs.size()));
  for (const kvm_msr_entry& msr : msrs) w.put(msr);
  w.put(*xsave);
  w.put(xcrs);
  return w.take();
}

Status restore_vcpu_state(KvmVcpu& vcpu, std::span<const uint8_t> state) {
  StateReader r(state);
  NV_TRY(r.expect_header(kStateTag, kStateVersion, "vCPU"));
  uint32_t index = 0;
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  kvm_lapic_state lapic{};
  kvm_mp_state mp{};
  kvm_vcpu_events events{};
  uint32_t msr_count = 0;
  if (!r.get(index) || !r.get(regs) || !r.get(sregs) || !r.get(fpu) || !r.get(lapic) || !r.get(mp) ||
      !r.get(events) || !r.get(msr_count) || msr_count > kMaxMsrs) {
    return truncated_state("vCPU");
  }
  std::vector<kvm_msr_entry> msrs(msr_count);
  for (auto& msr : msrs) {
    if (!r.get(msr)) return truncated_state("vCPU");
  }
  auto xsave = std::make_unique<kvm_abi::XsaveArea>();
  kvm_xcrs xcrs{};
  if (!r.get(*xsave) || !r.get(xcrs) || !r.at_end()) return truncated_state("vCPU");
  if (xcrs.nr_xcrs > KVM_MAX_XCRS) return truncated_state("vCPU");
  if (index != vcpu.index()) {
    return plain_error("ESTATE", "saved state of vCPU " + std::to_string(index) + " given to vCPU " +
                                     std::to_string(vcpu.index()));
  }
  // Order as KVM expects: sregs before regs (mode), MSRs, then LAPIC before MP state and events.
  NV_TRY(vcpu.set_sregs(sregs));
  NV_TRY(vcpu.set_regs(regs));
  NV_TRY(vcpu.set_fpu(fpu));
  NV_TRY(vcpu.set_xcrs(xcrs));    // XCR0 before the XSAVE area it describes
  NV_TRY(vcpu.set_xsave(*xsave));
  NV_TRY(vcpu.set_msrs(msrs));
  NV_TRY(vcpu.set_lapic(lapic));
  NV_TRY(vcpu.set_mp_state(mp));
  NV_TRY(vcpu.set_vcpu_events(events));
  return {};
}

}  // namespace nodevisor::vmm
