// KVM VMs made ahead of time, so starts find kernel work already done:
// - for the next cold start, guest memory (an empty memfd) and a KVM VM with that memory
//   registered, its irqchip and PIT created, and its vCPUs created with their CPUID: ~0.7-0.9
//   ms of kernel work here (KVM_CREATE_VM, the memory slot, whose metadata KVM allocates per
//   page, the irqchip, KVM_CREATE_VCPU and KVM_SET_CPUID2);
// - for the next restore, whose memory is a snapshot file not known in advance, an empty KVM
//   VM (KVM_CREATE_VM, ~0.2 ms): its memory must still go in before its irqchip (kvm_vm.h).
//
// One spare of each: the full one for the memory size and vCPU count last asked for. `take` / `take_empty`
// hand a spare over and ask for the next one, which the "nv-prewarm" thread prepares while the
// VM just built boots. A spare costs one or two fds and, for a full one, KVM's slot metadata
// (about 2 KiB per MiB of guest RAM) — no guest pages, no CPU while it waits.
// NODEVISOR_WARM_VM=0 turns both off.
//
// Threads: `take` and `settle` from any thread; preparing (and releasing a spare of another
// size) on the prewarm thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "vmm/kvm/kernel_objects.h"

namespace nodevisor::vmm {

// False when NODEVISOR_WARM_VM=0: no spare VMs are made (here or for restores).
bool spare_vms_enabled();

// A spare: its vCPUs have their CPUID set (kvm/cpuid.h).
using WarmVm = KernelObjects;

class WarmVmCache {
 public:
  static WarmVmCache& instance();

  // The spare when it has `memory_bytes` of RAM and `vcpus` vCPUs; then prepares the next one
  // like it.
  std::unique_ptr<WarmVm> take(uint64_t memory_bytes, uint32_t vcpus);
  // An empty KVM VM (fd() < 0 when none is ready); then prepares the next one.
  KvmVm take_empty();
  // Waits until no spare is being prepared (fd counts are then stable, for leak checks).
  void settle();

  ~WarmVmCache();

 private:
  WarmVmCache() = default;
  void start_thread();  // mutex_ held
  bool has_work() const;  // mutex_ held
  void run();

  std::mutex mutex_;
  std::condition_variable wanted_changed_;
  std::condition_variable idle_;
  std::unique_ptr<WarmVm> spare_;
  uint64_t spare_bytes_ = 0;
  uint32_t spare_vcpus_ = 0;
  uint64_t wanted_bytes_ = 0;  // 0: nothing to prepare
  uint32_t wanted_vcpus_ = 0;
  KvmVm empty_;
  bool empty_wanted_ = false;
  bool preparing_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace nodevisor::vmm
