// Loads an ELF64 x86-64 kernel that has a Xen PVH entry note (Linux vmlinux, the probe guest)
// into guest memory. The file is untrusted input: every header field is checked (magic, class,
// machine, table bounds, segment bounds, overlaps, fit in guest RAM) and a failure names the
// problem instead of loading half an image.
//
// Runs on: the VM-building thread (a libuv worker, never the JS thread).
#pragma once

#include <cstdint>
#include <span>

#include "vmm/memory/guest_memory.h"
#include "sys/result.h"

namespace nodevisor::vmm::x86_64 {

struct LoadedKernel {
  uint64_t pvh_entry = 0;   // 32-bit physical entry point from XEN_ELFNOTE_PHYS32_ENTRY
  // 64-bit CPL-3 entry from the nodevisor note (guest/protocol/elf_note.h), or 0 when absent.
  uint64_t user_entry = 0;
  // Where the guest wants the VM generation id (NODEVISOR_NOTE_GENERATION_GPA), or 0.
  uint64_t generation_gpa = 0;
  uint64_t lowest_address = 0;
  uint64_t end_address = 0;  // one past the highest loaded byte
};

// True when `image` starts with the ELF magic (to choose a loader).
bool looks_like_elf(std::span<const uint8_t> image);

// Checks `image` completely, then copies its PT_LOAD segments to their physical addresses.
// `memory` must be freshly created (all zero): bytes between p_filesz and p_memsz are not
// written again.
Result<LoadedKernel> load_pvh_elf(GuestMemory& memory, std::span<const uint8_t> image);

}  // namespace nodevisor::vmm::x86_64
