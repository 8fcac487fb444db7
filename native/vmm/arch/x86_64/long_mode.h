// Starting a vCPU directly in 64-bit long mode, as Firecracker does for its 64-bit boot: the
// VMM writes identity page tables, a GDT and a TSS into guest memory and hands the vCPU its
// control registers, so the guest runs none of the mode-switching code itself.
//
// Two privilege levels:
// - kKernel (CPL 0): the Linux 64-bit boot protocol (bzImage), with the selectors it requires
//   (__BOOT_CS = 0x10, __BOOT_DS = 0x18).
// - kUser (CPL 3): a nodevisor-aware guest (the probe) started at its user entry. On kvm_pvm
//   CPL 0 code is emulated and CPL 3 code runs natively, so this guest never executes a single
//   CPL-0 instruction. Port I/O at CPL 3 is allowed by the TSS I/O permission bitmap (all ports
//   open): kvm_pvm clears RFLAGS.IOPL on the way to user mode, so IOPL 3 alone does not work
//   there (measured: `out %al,%dx` then raises #GP); the bitmap works on every KVM. IOPL is
//   still set to 3 for KVMs that honour it.
//
// Runs on: the VM-building thread.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "vmm/memory/guest_memory.h"
#include "sys/result.h"

namespace nodevisor::vmm::x86_64 {

enum class Privilege { kKernel, kUser };

// Selectors of the long-mode GDT written by write_long_mode_tables.
constexpr uint16_t kLongModeKernelCode = 0x10;
constexpr uint16_t kLongModeKernelData = 0x18;
constexpr uint16_t kLongModeUserData = 0x20 | 3;
constexpr uint16_t kLongModeUserCode = 0x28 | 3;
constexpr uint16_t kLongModeTss = 0x30;

// Writes the identity map of the first 4 GiB (2 MiB pages; user-accessible for kUser), the
// GDT and the TSS (with its I/O bitmap) at the addresses of layout.h. `memory` must be fresh
// (zero-filled): only the non-zero bytes are written.
Status write_long_mode_tables(GuestMemory& memory, Privilege privilege);

// Registers for a 64-bit start at `rip` with paging on, interrupts off. `sregs` comes from
// KVM_GET_SREGS so fields not set here (APIC base, interrupt bitmap) keep KVM's values.
// The caller sets the argument register its boot protocol uses (rsi, rdi, ...).
void long_mode_registers(Privilege privilege, uint64_t rip, kvm_regs& regs, kvm_sregs& sregs);

}  // namespace nodevisor::vmm::x86_64
