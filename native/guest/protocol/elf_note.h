// The contract between a guest kernel image and nodevisor's loader (vmm/arch/x86_64/elf_loader.cc):
// shared by any guest that carries the note (the probe, native/guest/probe/entry.S) and the VMM.
// Plain constants only, so a freestanding assembler file and C++20 can both include it.
#pragma once

// The nodevisor ELF note (PT_NOTE, name "nodevisor"): a guest that carries it offers a second
// entry besides its PVH one. NODEVISOR_NOTE_USER_ENTRY64 (8-byte descriptor): a 64-bit entry
// point that nodevisor's VMM starts directly at CPL 3 (64-bit code segment DPL 3, identity
// paging of the first 4 GiB with user pages, a TSS whose I/O bitmap opens every port, IOPL 3,
// interrupts off, no IDT), %rdi = hvm_start_info address, %rsp undefined. On kvm_pvm this
// skips every (emulated) CPL-0 instruction. Other loaders (QEMU) ignore the note.
#define NODEVISOR_NOTE_NAME "nodevisor"
#define NODEVISOR_NOTE_USER_ENTRY64 1
// NODEVISOR_NOTE_GENERATION_GPA (8-byte descriptor): a guest-physical address, 8-byte aligned,
// in RAM the guest keeps for it, where nodevisor's VMM writes the 8-byte VM generation id
// (little-endian; vmm/devices/legacy/vm_generation.h) before the guest first runs, and again,
// with the new VM's own id, in every VM restored from a snapshot: the idea of Microsoft's
// VMGenID buffer. Reading it costs the guest a memory load instead of two port exits.
#define NODEVISOR_NOTE_GENERATION_GPA 2
