// The Linux x86 boot protocol, 64-bit entry (Documentation/arch/x86/boot.rst): loads a
// bzImage's protected-mode kernel and writes the zero page (struct boot_params) with the setup
// header copied from the image, the e820 map, the command line and the initrd.
//
// The file is untrusted input: every setup-header field used is checked (boot flag, "HdrS",
// protocol version >= 2.12, XLF_KERNEL_64, LOADED_HIGH, setup size, syssize against the file,
// alignment, command-line size, memory the kernel needs), and a failure names the field.
//
// Runs on: the VM-building thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "vmm/memory/guest_memory.h"
#include "sys/result.h"

namespace nodevisor::vmm::x86_64 {

// True when `image` carries a setup header (boot flag 0xAA55 and "HdrS"); says nothing about
// whether it is valid.
bool looks_like_bzimage(std::span<const uint8_t> image);

struct LoadedBzImage {
  uint64_t load_address = 0;   // where the protected-mode kernel was copied
  uint64_t entry64 = 0;        // load_address + 0x200
  uint64_t end_address = 0;    // one past the memory the kernel needs to boot (init_size)
  uint64_t cmdline_max = 0;    // the kernel's cmdline_size
  uint64_t initrd_max = 0;     // highest byte address an initrd may use (initrd_addr_max)
};

// Checks the setup header, then copies the protected-mode kernel into guest memory.
Result<LoadedBzImage> load_bzimage(GuestMemory& memory, std::span<const uint8_t> image);

// Writes the command line, the initrd and boot_params; returns the zero page's address (%rsi).
Result<uint64_t> write_linux_boot_params(GuestMemory& memory, std::span<const uint8_t> image,
                                         const LoadedBzImage& kernel, const std::string& cmdline,
                                         std::span<const uint8_t> initrd);

}  // namespace nodevisor::vmm::x86_64
