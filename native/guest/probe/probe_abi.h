// The contract between the probe guest and a VMM, shared by native/guest/probe (guest side,
// freestanding C/asm) and native/vmm (host side). Plain constants only, so both a freestanding
// assembler file and C++20 can include it. See README.md in this directory.
#pragma once

// COM1 (8250 UART). The probe writes bytes to THR without waiting on LSR: our 8250 and QEMU's
// are always ready, and every extra `in` is a VM exit.
#define PROBE_COM1_PORT 0x3f8

// POST/debug port: the probe writes a phase code (one byte).
#define PROBE_PHASE_PORT 0x80
#define PROBE_PHASE_STARTED 0x40  // first instruction of the 32-bit PVH entry
#define PROBE_PHASE_READY 0x41    // banner printed, main loop about to park

// Exit port, at QEMU's isa-debug-exit default address (iobase=0x501), so the same ELF ends a
// QEMU run: QEMU exits with status (value << 1) | 1; nodevisor ends the VM with reason
// "guest-exit" and the value as code.
#define PROBE_EXIT_PORT 0x501

// Wait port (32-bit `in`): blocks the vCPU in the VMM until the VMM has work for the guest or a
// timeout passes, then returns a command word. An unassigned port reads as all ones under QEMU
// (and real hardware): the probe then knows no nodevisor VMM is there and exits.
#define PROBE_WAIT_PORT 0x504
#define PROBE_CMD_NONE 0u           // timeout or VMM interruption: park again
#define PROBE_CMD_EXIT 1u           // write the exit port with status 0
#define PROBE_CMD_COUNT 2u          // spin forever, incrementing the status page counter
#define PROBE_CMD_CONSOLE_INPUT 3u  // drain the UART receiver, echoing each byte
#define PROBE_CMD_VIRTIO 4u         // virtio work is waiting (agent input, room to send, a disk)
#define PROBE_CMD_ABSENT 0xffffffffu

// VM generation id (native/vmm/devices/legacy/vm_generation.h): 8 read-only bytes holding a
// value drawn anew for every VM, so a clone restored from a snapshot reads a different one.
// Two 32-bit `in`s: the low half at 0x508, the high half at 0x50c. The probe reads it from
// memory instead (PROBE_VM_GENERATION_GPA, named by its ELF note): a load, not two exits.
#define PROBE_VM_GENERATION_PORT 0x508

// Status page: guest-physical address where the probe publishes what it is doing, read by
// tests through the VMM (a 64-bit little-endian counter at offset 0, incremented in COUNT mode).
#define PROBE_STATUS_GPA 0x5000
#define PROBE_STATUS_COUNTER_OFFSET 0
// The VM generation id, 8 bytes, written there by the VMM (NODEVISOR_NOTE_GENERATION_GPA).
#define PROBE_VM_GENERATION_GPA (PROBE_STATUS_GPA + 8)

#define PROBE_BANNER "nodevisor probe ready\n"

// The nodevisor ELF note (the probe carries one): ../protocol/elf_note.h.
#include "../protocol/elf_note.h"
