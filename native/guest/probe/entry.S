// Entries of the probe guest.
//
// 1. PVH (any VMM: QEMU microvm, nodevisor with bootEntry 'pvh'): 32-bit protected mode ->
//    long mode -> iretq to CPL 3. On kvm_pvm every CPL-0 instruction is run by KVM's
//    instruction emulator (~0.5 us each), so this path does as little as possible: the page
//    tables, the GDT and the TSS descriptor are static data laid out by the assembler and the
//    linker script; the code only loads them (about 25 instructions).
// 2. The nodevisor user entry (NODEVISOR_NOTE_USER_ENTRY64, see probe_abi.h): nodevisor's VMM
//    sets up long mode, paging and CPL 3 itself and starts the vCPU at probe_user_entry64, so
//    no CPL-0 instruction runs at all.
//
// Either way the main loop (main.c) runs at CPL 3. Port I/O there is allowed by the TSS I/O
// permission bitmap, not by IOPL: kvm_pvm clears RFLAGS.IOPL on the way to user mode, and KVM's
// emulator then checks the bitmap (a TSS without one made every `out %al,%dx` fault).
//
// PVH entry state (Xen PVH ABI, also what QEMU's microvm sets up): 32-bit flat protected mode,
// paging off, %ebx = physical address of struct hvm_start_info.
#include "probe_abi.h"

#define SEL_KERNEL_CODE 0x08
#define SEL_KERNEL_DATA 0x10
#define SEL_USER_DATA   0x18
#define SEL_USER_CODE   0x20
#define SEL_TSS         0x28
#define RPL3            3

#define CR0_PE  (1 << 0)
#define CR0_ET  (1 << 4)
#define CR0_PG  (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define RFLAGS_IOPL3 (3 << 12)
#define RFLAGS_RESERVED1 (1 << 1)

// Xen ELF note: the 32-bit physical entry point (XEN_ELFNOTE_PHYS32_ENTRY = 18). Our VMM,
// QEMU and Firecracker find it through the PT_NOTE program header.
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 // namesz ("Xen\0")
    .long 4                 // descsz
    .long 18                // type: XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .long pvh_entry32

// The nodevisor note: the 64-bit CPL-3 entry (probe_abi.h). Other loaders ignore it.
    .section .note.nodevisor, "a", @note
    .balign 4
    .long 10                // namesz ("nodevisor\0")
    .long 8                 // descsz
    .long NODEVISOR_NOTE_USER_ENTRY64
    .asciz "nodevisor"
    .balign 4
    .quad probe_user_entry64
// ... and where the VMM keeps the VM generation id for it (generation.c reads it there).
    .balign 4
    .long 10
    .long 8
    .long NODEVISOR_NOTE_GENERATION_GPA
    .asciz "nodevisor"
    .balign 4
    .quad PROBE_VM_GENERATION_GPA

    .section .text.entry32, "ax"
    .code32
    .globl pvh_entry32
pvh_entry32:
    movb $PROBE_PHASE_STARTED, %al
    outb %al, $PROBE_PHASE_PORT
    lgdt gdt_pointer
    movl $pml4, %eax
    movl %eax, %cr3
    movl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    movl $EFER_LME, %eax
    xorl %edx, %edx
    wrmsr
    movl $(CR0_PE | CR0_ET | CR0_PG), %eax
    movl %eax, %cr0
    movl $kernel_stack_top, %esp
    ljmp $SEL_KERNEL_CODE, $long_mode_entry

    .code64
long_mode_entry:
    // %ss must hold a data selector before iretq pops a new one; %ds/%es are unused at CPL 0.
    movl $SEL_KERNEL_DATA, %eax
    movl %eax, %ss
    movl $SEL_TSS, %eax
    ltr %ax
    movl %ebx, %edi         // first argument of probe_main: the hvm_start_info address
    // Drop to CPL 3 with IOPL 3 (kvm_pvm clears the IOPL; the TSS I/O bitmap opens the ports).
    pushq $(SEL_USER_DATA | RPL3)
    pushq $user_stack_top
    pushq $(RFLAGS_IOPL3 | RFLAGS_RESERVED1)   // interrupts off: the probe polls
    pushq $(SEL_USER_CODE | RPL3)
    pushq $probe_main
    iretq

    // The nodevisor user entry: already at CPL 3 in 64-bit mode, %rdi = hvm_start_info.
    .globl probe_user_entry64
probe_user_entry64:
    movq $user_stack_top, %rsp
    jmp probe_main

    .section .rodata.gdt, "a"
    .balign 16
gdt:
    .quad 0                          // null
    .quad 0x00af9b000000ffff         // 0x08 kernel code, 64-bit, DPL 0
    .quad 0x00cf93000000ffff         // 0x10 kernel data, DPL 0
    .quad 0x00cff3000000ffff         // 0x18 user data, DPL 3
    .quad 0x00affb000000ffff         // 0x20 user code, 64-bit, DPL 3
    // 0x28: 64-bit TSS descriptor, 16 bytes. The base is split across the descriptor; the
    // linker script computes both halves (probe_tss_descriptor_low/_high) from `tss`.
    .quad probe_tss_descriptor_low
    .quad probe_tss_descriptor_high
gdt_end:

    .balign 4
gdt_pointer:
    .word gdt_end - gdt - 1
    .long gdt

    // Identity map of the first 1 GiB (the probe's RAM) and of 3–4 GiB (the MMIO hole, where
    // the VMM puts the virtio-mmio devices) with 2 MiB pages, user-accessible at every level
    // (present | writable | user = 0x7; PS = 0x80 for the 2 MiB leaves; PCD|PWT = 0x18 for the
    // uncached MMIO leaves).
    .section .data.page_tables, "aw"
    .balign 4096
pml4:
    .quad pdpt + 0x7
    .fill 511, 8, 0
pdpt:
    .quad pd0 + 0x7
    .quad 0
    .quad 0
    .quad pd3 + 0x7
    .fill 508, 8, 0
pd0:
    .set page, 0
    .rept 512
    .quad (page << 21) | 0x87
    .set page, page + 1
    .endr
pd3:
    .set page, 3 * 512
    .rept 512
    .quad (page << 21) | 0x9f
    .set page, page + 1
    .endr

    // Task state segment: rsp0 (the stack an exception from CPL 3 would use) and the I/O
    // permission bitmap right after the 104-byte header: 65536 bits, all 0 (every port
    // allowed), then the 0xff byte the CPU reads past the end. The descriptor's limit
    // (probe.ld) covers all of it.
    .section .data.tss, "aw"
    .balign 16
    .globl tss
tss:
    .long 0
    .quad kernel_stack_top   // rsp0
    .fill 102 - 12, 1, 0
    .word 104                // I/O bitmap offset
    .fill 65536 / 8, 1, 0
    .byte 0xff

    .section .bss.stacks, "aw", @nobits
    .balign 4096
kernel_stack:
    .skip 4096
kernel_stack_top:
user_stack:
    .skip 16384
user_stack_top:
