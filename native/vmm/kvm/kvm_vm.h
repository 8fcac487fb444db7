// One KVM virtual machine fd: in-kernel irqchip and PIT, the TSS and identity-map pages Intel
// needs below 4 GiB, guest memory slots, vCPU creation and interrupt lines.
//
// Threads: built on the creating thread; `set_irq_line` may be called from any thread (the
// ioctl is thread-safe in KVM).
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "vmm/kvm/vm_wiring.h"
#include "vmm/memory/guest_memory.h"
#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm {

class KvmVm final : public VmWiring {
 public:
  // Just below the 4 GiB boundary, as Firecracker and QEMU place them (inside the MMIO hole,
  // so never guest RAM): three pages of TSS, one page of identity map.
  static constexpr uint64_t kIdentityMapAddress = 0xfffb'c000;
  static constexpr uint64_t kTssAddress = 0xfffb'd000;

  // Creates the VM with `memory` registered as its RAM, then the irqchip and PIT.
  //
  // The order is a measured choice (kvm_pvm, 6.18): KVM_SET_USER_MEMORY_REGION on a VM that
  // has no irqchip yet takes ~60 us for 128 MiB; after KVM_CREATE_IRQCHIP the same call
  // takes 7-11 ms (the slot update then waits for an expedited SRCU grace period that the
  // irqchip's readers make expensive). So memory goes in first, right after KVM_CREATE_VM.
  // The memory must outlive the KvmVm (KVM keeps the host address).
  static Result<KvmVm> create(const GuestMemory& memory);
  // The same in two steps: a VM with nothing in it yet (KVM_CREATE_VM, which can be done
  // ahead of time: kvm/warm_vm.h), then its memory, irqchip and PIT. `set_up` once only.
  static Result<KvmVm> create_empty();
  Status set_up(const GuestMemory& memory);

  int fd() const { return fd_.get(); }
  Status set_irq_line(uint32_t irq, bool level);
  // Asks KVM to buffer guest writes to ports [port, port + size) in the coalesced ring instead
  // of exiting for each (KVM_CAP_COALESCED_PIO). Returns the ring's page offset in a vCPU's
  // mapping, or 0 when this KVM cannot (the writes then exit as usual).
  uint32_t coalesce_pio_writes(uint16_t port, uint32_t size);

  // VM-wide device state for snapshots (the VM paused; any thread). The irqchip is read per
  // chip: KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC.
  Status get_irqchip(uint32_t chip_id, kvm_irqchip& chip) const;
  Status set_irqchip(const kvm_irqchip& chip);
  Status get_pit(kvm_pit_state2& pit) const;
  Status set_pit(const kvm_pit_state2& pit);
  // The KVM clock (kvmclock's time base, in ns): a restored VM's clock continues from here.
  Status get_clock(kvm_clock_data& clock) const;
  Status set_clock(const kvm_clock_data& clock);

  // VmWiring: KVM_IRQFD and KVM_IOEVENTFD (datamatch) on this VM.
  Result<UniqueFd> connect_irqfd(uint32_t gsi) override;
  Status connect_ioeventfd(uint64_t address, uint32_t datamatch, int fd) override;

 private:
  Status register_memory(const GuestMemory& memory);
  Status create_irqchip_and_pit();

  UniqueFd fd_;
};

}  // namespace nodevisor::vmm
