#include "vmm/vstate/vcpu_state.h"

#include <cstring>
#include <memory>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {

constexpr uint32_t kStateTag = state_tag("VCPU");
// 2: adds the XSAVE area and the XCRs after the MSRs.
// 3: adds the debug registers; the MSR list grows (TSC, PAT, MTRRs, kvmclock, TSC deadline)
//    and keeps only the MSRs this host's KVM can read.
constexpr uint32_t kStateVersion = 3;

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
constexpr uint32_t kMsrTscAux = 0xc0000103;
constexpr uint32_t kMsrTsc = 0x10;
constexpr uint32_t kMsrTscAdjust = 0x3b;
constexpr uint32_t kMsrPat = 0x277;
constexpr uint32_t kMsrTscDeadline = 0x6e0;
// kvmclock and the other KVM paravirtual MSRs (Documentation/virt/kvm/x86/msr.rst).
constexpr uint32_t kMsrKvmWallClock = 0x11;
constexpr uint32_t kMsrKvmSystemTime = 0x12;
constexpr uint32_t kMsrKvmWallClockNew = 0x4b564d00;
constexpr uint32_t kMsrKvmSystemTimeNew = 0x4b564d01;
constexpr uint32_t kMsrKvmAsyncPfEn = 0x4b564d02;
constexpr uint32_t kMsrKvmStealTime = 0x4b564d03;
constexpr uint32_t kMsrKvmPvEoiEn = 0x4b564d04;
constexpr uint32_t kMsrKvmAsyncPfInt = 0x4b564d06;

// The MSRs saved with a vCPU (EFER, FS/GS base and the APIC base are in sregs). Those this
// host's KVM cannot read are left out of the saved list, so a restore sets only what was read.
// TSC first and TSC deadline last: KVM_SET_MSRS applies them in order, and the deadline is
// relative to the TSC just set.
std::vector<uint32_t> saved_msr_indexes() {
  std::vector<uint32_t> list = {kMsrTsc,        kMsrTscAdjust,      kMsrSysenterCs,   kMsrSysenterEsp,
                                kMsrSysenterEip, kMsrStar,          kMsrLstar,        kMsrCstar,
                                kMsrSyscallMask, kMsrKernelGsBase,  kMsrTscAux,       kMsrMiscEnable,
                                kMsrPat,         kMsrMtrrDefType,   kMsrKvmWallClock, kMsrKvmSystemTime,
                                kMsrKvmWallClockNew, kMsrKvmSystemTimeNew, kMsrKvmAsyncPfEn, kMsrKvmStealTime,
                                kMsrKvmPvEoiEn,  kMsrKvmAsyncPfInt};
  for (uint32_t i = 0; i < 16; ++i) list.push_back(0x200 + i);  // variable-range MTRRs, base/mask pairs
  for (uint32_t fixed : {0x250u, 0x258u, 0x259u}) list.push_back(fixed);
  for (uint32_t i = 0; i < 8; ++i) list.push_back(0x268 + i);  // fixed-range MTRRs 4K
  list.push_back(kMsrTscDeadline);
  return list;
}
constexpr uint32_t kMaxMsrs = 128;

// Reads every MSR of `indexes` that KVM can read, skipping those it refuses.
Result<std::vector<kvm_msr_entry>> read_msrs(const KvmVcpu& vcpu, const std::vector<uint32_t>& indexes) {
  std::vector<kvm_msr_entry> out;
  size_t next = 0;
  while (next < indexes.size()) {
    std::vector<kvm_msr_entry> batch;
    for (size_t i = next; i < indexes.size(); ++i) batch.push_back(kvm_msr_entry{indexes[i], 0, 0});
    auto got = vcpu.get_msrs_prefix(batch);
    if (!got.ok()) return got.error();
    for (size_t i = 0; i < got.value(); ++i) out.push_back(batch[i]);
    next += got.value() + 1;  // the one after the prefix is not readable here
  }
  return out;
}

// The local APIC's timer is counting down: one-shot or periodic mode with a non-zero initial
// count (SDM vol. 3, 11.5.4). In TSC-deadline mode its deadline is an MSR, loaded with them.
bool lapic_timer_counts(const kvm_lapic_state& lapic) {
  constexpr size_t kLvtTimer = 0x320;
  constexpr size_t kInitialCount = 0x380;
  uint32_t lvt = 0;
  uint32_t initial = 0;
  std::memcpy(&lvt, lapic.regs + kLvtTimer, sizeof lvt);
  std::memcpy(&initial, lapic.regs + kInitialCount, sizeof initial);
  const uint32_t mode = (lvt >> 17) & 3;  // 0 one-shot, 1 periodic, 2 TSC-deadline
  return mode != 2 && initial != 0;
}

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
  kvm_debugregs debugregs{};
  NV_TRY(vcpu.get_debugregs(debugregs));
  auto read = read_msrs(vcpu, saved_msr_indexes());
  if (!read.ok()) return read.error();
  const std::vector<kvm_msr_entry>& msrs = read.value();
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
  w.put(debugregs);
  return w.take();
}

Status restore_vcpu_state(KvmVcpu& vcpu, std::span<const uint8_t> state, VcpuStateStep step) {
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
  kvm_debugregs debugregs{};
  if (!r.get(*xsave) || !r.get(xcrs) || !r.get(debugregs) || !r.at_end()) return truncated_state("vCPU");
  if (xcrs.nr_xcrs > KVM_MAX_XCRS) return truncated_state("vCPU");
  if (index != vcpu.index()) {
    return plain_error("ESTATE", "saved state of vCPU " + std::to_string(index) + " given to vCPU " +
                                     std::to_string(vcpu.index()));
  }
  // Order as KVM expects (Firecracker's): sregs before regs (mode); XCR0 before the XSAVE
  // area it describes; the LAPIC before the MSRs (the TSC deadline timer lives in it); MP
  // state and pending events last. The registers step comes first when the two are split.
  // A LAPIC whose timer is not counting down goes with the registers: nothing in it runs on.
  const bool lapic_with_timers = lapic_timer_counts(lapic);
  if (step != VcpuStateStep::kTimers) {
    NV_TRY(vcpu.set_sregs(sregs));
    NV_TRY(vcpu.set_regs(regs));
    NV_TRY(vcpu.set_fpu(fpu));
    NV_TRY(vcpu.set_xcrs(xcrs));
    NV_TRY(vcpu.set_xsave(*xsave));
    NV_TRY(vcpu.set_debugregs(debugregs));
    if (!lapic_with_timers) NV_TRY(vcpu.set_lapic(lapic));
  }
  if (step != VcpuStateStep::kRegisters) {
    if (lapic_with_timers) NV_TRY(vcpu.set_lapic(lapic));
    NV_TRY(vcpu.set_msrs(msrs));
    NV_TRY(vcpu.set_mp_state(mp));
    NV_TRY(vcpu.set_vcpu_events(events));
  }
  return {};
}

}  // namespace nodevisor::vmm
