// One KVM virtual machine fd: in-kernel irqchip and PIT, the TSS and identity-map pages Intel
// needs below 4 GiB, guest memory slots, vCPU creation and interrupt lines.
//
// Threads: built on the creating thread; `set_irq_line` may be called from any thread (the
// ioctl is thread-safe in KVM).
#pragma once

#include <cstdint>

#include "vmm/memory/guest_memory.h"
#include "vmm/util/result.h"
#include "vmm/util/unique_fd.h"

namespace nodevisor::vmm {

class KvmVm {
 public:
  // Just below the 4 GiB boundary, as Firecracker and QEMU place them (inside the MMIO hole,
  // so never guest RAM): three pages of TSS, one page of identity map.
  static constexpr uint64_t kIdentityMapAddress = 0xfffb'c000;
  static constexpr uint64_t kTssAddress = 0xfffb'd000;

  static Result<KvmVm> create();

  int fd() const { return fd_.get(); }
  Status register_memory(const GuestMemory& memory);
  Status set_irq_line(uint32_t irq, bool level);

 private:
  UniqueFd fd_;
};

}  // namespace nodevisor::vmm
