// PVH boot (the Xen HVM direct boot ABI that Linux, QEMU microvm and Firecracker use):
// writes struct hvm_start_info, the memory map, the command line and the initrd module into
// guest memory, and gives the boot vCPU its 32-bit protected-mode entry state.
//
// Runs on: the VM-building thread.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "vmm/memory/guest_memory.h"
#include "sys/result.h"

namespace nodevisor::vmm::x86_64 {

struct PvhBootData {
  std::string cmdline;
  std::span<const uint8_t> initrd;  // empty: no initrd
  uint64_t kernel_end = 0;          // the initrd must load above this
};

// Writes the boot GDT, start info, memory map, command line and initrd. Returns the
// guest-physical address of hvm_start_info (for %ebx).
Result<uint64_t> write_pvh_boot_data(GuestMemory& memory, const PvhBootData& data);

// Registers of the boot vCPU at the PVH entry: 32-bit flat protected mode, paging off,
// %ebx = start info. `sregs` comes from KVM_GET_SREGS so fields we do not set (APIC base,
// interrupt bitmap) keep KVM's values.
void pvh_entry_registers(uint64_t entry, uint64_t start_info, kvm_regs& regs, kvm_sregs& sregs);

}  // namespace nodevisor::vmm::x86_64
