// One KVM vCPU fd and its shared `kvm_run` page.
//
// Threads: created on the VM-building thread; afterwards owned by its vCPU thread, except
// `request_immediate_exit`, which any thread may call to kick the vCPU out of KVM_RUN
// (an atomic store into the shared page, paired with a signal by vstate/vcpu_thread).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "vmm/kvm/kvm_abi.h"
#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm {

class KvmVm;

class KvmVcpu {
 public:
  static Result<KvmVcpu> create(const KvmVm& vm, uint32_t index);

  KvmVcpu(KvmVcpu&&) noexcept;
  KvmVcpu& operator=(KvmVcpu&&) = delete;
  KvmVcpu(const KvmVcpu&) = delete;
  ~KvmVcpu();

  uint32_t index() const { return index_; }
  int fd() const { return fd_.get(); }
  kvm_run* run_page() const { return run_; }
  // The VM's coalesced-write ring, mapped `page_offset` pages into this vCPU's mapping (the
  // offset KvmVm::coalesce_pio_writes returned); nullptr when it lies outside the mapping.
  kvm_coalesced_mmio_ring* coalesced_ring(uint32_t page_offset) const;

  // One KVM_RUN. Returns 0, or -errno (EINTR/EAGAIN when kicked).
  int run();
  void request_immediate_exit();
  void clear_immediate_exit();

  Status set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  Status get_regs(kvm_regs& regs) const;
  Status set_regs(const kvm_regs& regs);
  Status get_sregs(kvm_sregs& sregs) const;
  Status set_sregs(const kvm_sregs& sregs);
  // XSAVE area (x87, SSE, AVX, ...) and the XCRs (XCR0): what a restored vCPU needs for the
  // guest's extended registers, beyond kvm_fpu.
  Status get_xsave(kvm_abi::XsaveArea& area) const;
  Status set_xsave(const kvm_abi::XsaveArea& area);
  Status get_xcrs(kvm_xcrs& xcrs) const;
  Status set_xcrs(const kvm_xcrs& xcrs);
  Status get_fpu(kvm_fpu& fpu) const;
  Status set_fpu(const kvm_fpu& fpu);
  Status get_lapic(kvm_lapic_state& lapic) const;
  Status set_lapic(const kvm_lapic_state& lapic);
  Status get_mp_state(kvm_mp_state& state) const;
  Status set_mp_state(const kvm_mp_state& state);
  Status get_vcpu_events(kvm_vcpu_events& events) const;
  Status set_vcpu_events(const kvm_vcpu_events& events);
  Status get_debugregs(kvm_debugregs& regs) const;
  Status set_debugregs(const kvm_debugregs& regs);
  // MSRs by index; `get_msrs` fills the values of the entries it is given.
  Status get_msrs(std::vector<kvm_msr_entry>& entries) const;
  Status set_msrs(const std::vector<kvm_msr_entry>& entries);
  // Like get_msrs, but KVM stops at the first MSR it cannot read: returns how many leading
  // entries were filled (the one after them is unsupported here).
  Result<size_t> get_msrs_prefix(std::vector<kvm_msr_entry>& entries) const;

 private:
  KvmVcpu() = default;

  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  uint32_t index_ = 0;
};

}  // namespace nodevisor::vmm
