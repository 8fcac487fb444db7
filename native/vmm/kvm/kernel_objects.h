// A VM's kernel objects: its guest memory, its KVM VM and the vCPUs, with the one order they
// may be released in: vCPUs first (their fds pin the VM), then the VM, then the memory (with
// the VM gone, unmapping no longer calls into KVM's MMU notifier).
//
// What a restore is built on (snapshot/open_snapshot.h), what the spare cache makes ahead of a
// start (kvm/warm_vm.h), and what a stopped VM hands to the reaper (util/reaper.h),
// whose thread runs the destructor: closing a VM fd waits ~15-25 ms in the kernel.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "vmm/kvm/kvm_vcpu.h"
#include "vmm/kvm/kvm_vm.h"
#include "vmm/memory/guest_memory.h"

namespace nodevisor::vmm {

struct KernelObjects {
  std::unique_ptr<GuestMemory> memory;
  KvmVm vm;
  std::vector<std::unique_ptr<KvmVcpu>> vcpus;  // by index

  KernelObjects() = default;
  KernelObjects(std::unique_ptr<GuestMemory> m, KvmVm v, std::vector<std::unique_ptr<KvmVcpu>> c)
      : memory(std::move(m)), vm(std::move(v)), vcpus(std::move(c)) {}
  KernelObjects(KernelObjects&&) = default;
  // No move assignment: it would release the old members in declaration order, memory first.
  KernelObjects& operator=(KernelObjects&&) = delete;
  ~KernelObjects() {
    vcpus.clear();
    vm = KvmVm{};
    memory.reset();
  }
};

}  // namespace nodevisor::vmm
