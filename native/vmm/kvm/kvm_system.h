// The process-wide /dev/kvm handle: opened once, API version checked, and the facts every VM
// needs (vCPU mmap size, supported CPUID) read once. Creating a VM then costs no extra
// open() or CPUID ioctl, which matters for a ~1 ms start.
//
// Threads: `get()` is safe from any thread (C++ static init); the object is immutable after.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm {

class KvmSystem {
 public:
  // The shared instance, or why /dev/kvm cannot be used.
  static Result<const KvmSystem*> get();

  int fd() const { return fd_.get(); }
  size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  const std::vector<kvm_cpuid_entry2>& supported_cpuid() const { return supported_cpuid_; }
  // Bytes of this host's XSAVE area (KVM_CAP_XSAVE2; 4096 when KVM does not say): a snapshot
  // taken where it differs cannot carry the guest's extended registers over.
  uint32_t xsave_size() const { return xsave_size_; }

 private:
  static Result<KvmSystem*> open_system();

  UniqueFd fd_;
  size_t vcpu_mmap_size_ = 0;
  uint32_t xsave_size_ = 4096;
  std::vector<kvm_cpuid_entry2> supported_cpuid_;
};

}  // namespace nodevisor::vmm
