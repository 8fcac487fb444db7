#include "vmm/kvm/kvm_vcpu.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <utility>

#include "vmm/kvm/kvm_abi.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/kvm/kvm_vm.h"

namespace nodevisor::vmm {

namespace {

Status vcpu_ioctl(int fd, unsigned long request, const void* arg, const char* name) {
  if (ioctl(fd, request, arg) != 0) {
    return sys_error(errno, std::string("ioctl(") + name + ")", std::string("vCPU ") + name + " failed", "EKVM_VCPU");
  }
  return {};
}

}  // namespace

Result<KvmVcpu> KvmVcpu::create(const KvmVm& vm, uint32_t index) {
  auto system = KvmSystem::get();
  if (!system.ok()) return system.error();
  KvmVcpu vcpu;
  vcpu.index_ = index;
  vcpu.fd_.reset(ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index)));
  if (!vcpu.fd_.valid()) {
    return sys_error(errno, "ioctl(KVM_CREATE_VCPU)", "cannot create vCPU " + std::to_string(index), "EKVM_VCPU");
  }
  vcpu.run_size_ = system.value()->vcpu_mmap_size();
  void* run = mmap(nullptr, vcpu.run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd(), 0);
  if (run == MAP_FAILED) return sys_error(errno, "mmap", "cannot map the vCPU run page", "EKVM_VCPU");
  vcpu.run_ = static_cast<kvm_run*>(run);
  return vcpu;
}

KvmVcpu::KvmVcpu(KvmVcpu&& other) noexcept
    : fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(std::exchange(other.run_size_, 0)),
      index_(other.index_) {}

KvmVcpu::~KvmVcpu() {
  if (run_ != nullptr) munmap(run_, run_size_);
}

int KvmVcpu::run() { return ioctl(fd(), KVM_RUN, 0) == 0 ? 0 : -errno; }

kvm_coalesced_mmio_ring* KvmVcpu::coalesced_ring(uint32_t page_offset) const {
  const size_t offset = static_cast<size_t>(page_offset) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (page_offset == 0 || run_ == nullptr || offset >= run_size_) return nullptr;
  return reinterpret_cast<kvm_coalesced_mmio_ring*>(reinterpret_cast<uint8_t*>(run_) + offset);
}

void KvmVcpu::request_immediate_exit() {
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

void KvmVcpu::clear_immediate_exit() {
  __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

Status KvmVcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  kvm_abi::CountedBuffer<kvm_cpuid_entry2> buffer(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buffer.put(i, entries[i]);
  return vcpu_ioctl(fd(), kvm_abi::kSetCpuid2, buffer.data(), "KVM_SET_CPUID2");
}

Status KvmVcpu::get_regs(kvm_regs& regs) const { return vcpu_ioctl(fd(), KVM_GET_REGS, &regs, "KVM_GET_REGS"); }
Status KvmVcpu::set_regs(const kvm_regs& regs) { return vcpu_ioctl(fd(), KVM_SET_REGS, &regs, "KVM_SET_REGS"); }
Status KvmVcpu::get_sregs(kvm_sregs& sregs) const { return vcpu_ioctl(fd(), KVM_GET_SREGS, &sregs, "KVM_GET_SREGS"); }
Status KvmVcpu::set_sregs(const kvm_sregs& sregs) { return vcpu_ioctl(fd(), KVM_SET_SREGS, &sregs, "KVM_SET_SREGS"); }
Status KvmVcpu::get_fpu(kvm_fpu& fpu) const { return vcpu_ioctl(fd(), KVM_GET_FPU, &fpu, "KVM_GET_FPU"); }
Status KvmVcpu::set_fpu(const kvm_fpu& fpu) { return vcpu_ioctl(fd(), KVM_SET_FPU, &fpu, "KVM_SET_FPU"); }
Status KvmVcpu::get_xsave(kvm_abi::XsaveArea& area) const {
  return vcpu_ioctl(fd(), kvm_abi::kGetXsave, &area, "KVM_GET_XSAVE");
}
Status KvmVcpu::set_xsave(const kvm_abi::XsaveArea& area) {
  return vcpu_ioctl(fd(), kvm_abi::kSetXsave, &area, "KVM_SET_XSAVE");
}
Status KvmVcpu::get_xcrs(kvm_xcrs& xcrs) const { return vcpu_ioctl(fd(), KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS"); }
Status KvmVcpu::set_xcrs(const kvm_xcrs& xcrs) { return vcpu_ioctl(fd(), KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS"); }

Status KvmVcpu::get_lapic(kvm_lapic_state& lapic) const { return vcpu_ioctl(fd(), KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC"); }
Status KvmVcpu::set_lapic(const kvm_lapic_state& lapic) { return vcpu_ioctl(fd(), KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC"); }
Status KvmVcpu::get_mp_state(kvm_mp_state& state) const {
  return vcpu_ioctl(fd(), KVM_GET_MP_STATE, &state, "KVM_GET_MP_STATE");
}
Status KvmVcpu::set_mp_state(const kvm_mp_state& state) {
  return vcpu_ioctl(fd(), KVM_SET_MP_STATE, &state, "KVM_SET_MP_STATE");
}
Status KvmVcpu::get_vcpu_events(kvm_vcpu_events& events) const {
  return vcpu_ioctl(fd(), KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS");
}
Status KvmVcpu::set_vcpu_events(const kvm_vcpu_events& events) {
  return vcpu_ioctl(fd(), KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS");
}
Status KvmVcpu::get_debugregs(kvm_debugregs& regs) const {
  return vcpu_ioctl(fd(), KVM_GET_DEBUGREGS, &regs, "KVM_GET_DEBUGREGS");
}
Status KvmVcpu::set_debugregs(const kvm_debugregs& regs) {
  return vcpu_ioctl(fd(), KVM_SET_DEBUGREGS, &regs, "KVM_SET_DEBUGREGS");
}

namespace {

kvm_abi::CountedBuffer<kvm_msr_entry> msr_buffer(const std::vector<kvm_msr_entry>& entries) {
  kvm_abi::CountedBuffer<kvm_msr_entry> buffer(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buffer.put(i, entries[i]);
  return buffer;
}

}  // namespace

Status KvmVcpu::get_msrs(std::vector<kvm_msr_entry>& entries) const {
  auto buffer = msr_buffer(entries);
  // KVM_GET_MSRS returns how many entries it read; it stops at the first it cannot.
  int got = ioctl(fd(), kvm_abi::kGetMsrs, buffer.data());
  if (got < 0) return sys_error(errno, "ioctl(KVM_GET_MSRS)", "cannot read MSRs", "EKVM_VCPU");
  if (static_cast<size_t>(got) != entries.size()) {
    return plain_error("EKVM_VCPU", "KVM refused to read MSR " + std::to_string(entries[got].index));
  }
  for (size_t i = 0; i < entries.size(); ++i) entries[i] = buffer.get(i);
  return {};
}

Result<size_t> KvmVcpu::get_msrs_prefix(std::vector<kvm_msr_entry>& entries) const {
  auto buffer = msr_buffer(entries);
  int got = ioctl(fd(), kvm_abi::kGetMsrs, buffer.data());
  if (got < 0) return sys_error(errno, "ioctl(KVM_GET_MSRS)", "cannot read MSRs", "EKVM_VCPU");
  const size_t n = std::min(static_cast<size_t>(got), entries.size());
  for (size_t i = 0; i < n; ++i) entries[i] = buffer.get(i);
  return n;
}

Status KvmVcpu::set_msrs(const std::vector<kvm_msr_entry>& entries) {
  auto buffer = msr_buffer(entries);
  int set = ioctl(fd(), kvm_abi::kSetMsrs, buffer.data());
  if (set < 0) return sys_error(errno, "ioctl(KVM_SET_MSRS)", "cannot write MSRs", "EKVM_VCPU");
  if (static_cast<size_t>(set) != entries.size()) {
    return plain_error("EKVM_VCPU", "KVM refused MSR " + std::to_string(entries[set].index));
  }
  return {};
}

}  // namespace nodevisor::vmm
