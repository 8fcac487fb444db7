#include "vmm/arch/x86_64/bzimage.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/memory_map.h"
#include "vmm/util/hex.h"

namespace nodevisor::vmm::x86_64 {

namespace {

// Offsets in the image and in boot_params (the setup header sits at the same place in both).
constexpr uint64_t kSetupSects = 0x1f1;
constexpr uint64_t kSyssize = 0x1f4;
constexpr uint64_t kVidMode = 0x1fa;
constexpr uint64_t kBootFlag = 0x1fe;
constexpr uint64_t kJump = 0x200;          // its second byte: the header's length past 0x202
constexpr uint64_t kHeaderMagic = 0x202;
constexpr uint64_t kVersion = 0x206;
constexpr uint64_t kTypeOfLoader = 0x210;
constexpr uint64_t kLoadflags = 0x211;
constexpr uint64_t kCode32Start = 0x214;
constexpr uint64_t kRamdiskImage = 0x218;
constexpr uint64_t kRamdiskSize = 0x21c;
constexpr uint64_t kCmdLinePtr = 0x228;
constexpr uint64_t kInitrdAddrMax = 0x22c;
constexpr uint64_t kKernelAlignment = 0x230;
constexpr uint64_t kRelocatableKernel = 0x234;
constexpr uint64_t kXloadflags = 0x236;
constexpr uint64_t kCmdlineSize = 0x238;
constexpr uint64_t kPrefAddress = 0x258;
constexpr uint64_t kInitSize = 0x260;
constexpr uint64_t kHeaderEndMin = 0x264;  // through init_size: what protocol 2.12 guarantees
// boot_params only.
constexpr uint64_t kExtRamdiskImage = 0x0c0;
constexpr uint64_t kExtRamdiskSize = 0x0c4;
constexpr uint64_t kExtCmdLinePtr = 0x0c8;
constexpr uint64_t kE820Entries = 0x1e8;
constexpr uint64_t kE820Table = 0x2d0;
constexpr uint64_t kE820MaxEntries = 128;
constexpr uint64_t kZeroPageSize = 4096;

constexpr uint16_t kBootFlagValue = 0xaa55;
constexpr uint32_t kHdrS = 0x53726448;  // "HdrS" little-endian
constexpr uint16_t kMinVersion = 0x020c;  // 2.12: xloadflags, the 64-bit entry is declared
constexpr uint8_t kLoadedHigh = 0x01;
constexpr uint16_t kXlfKernel64 = 0x01;
constexpr uint64_t kEntry64Offset = 0x200;
constexpr uint8_t kLoaderUndefined = 0xff;

Error bad_bzimage(const std::string& what) { return plain_error("EBADKERNEL", "invalid bzImage: " + what); }

template <typename T>
T read_le(std::span<const uint8_t> image, uint64_t offset) {
  T value;
  std::memcpy(&value, image.data() + offset, sizeof value);
  return value;
}

struct SetupHeader {
  uint64_t header_end = 0;  // one past the last header byte (0x202 + jump's second byte)
  uint64_t setup_bytes = 0;
  uint64_t kernel_bytes = 0;
  uint16_t version = 0;
  uint32_t kernel_alignment = 0;
  bool relocatable = false;
  uint64_t pref_address = 0;
  uint32_t init_size = 0;
  uint32_t cmdline_size = 0;
  uint32_t initrd_addr_max = 0;
};

Result<SetupHeader> parse_setup_header(std::span<const uint8_t> image) {
  if (image.size() < kHeaderEndMin) return bad_bzimage("the file is too small for a setup header (" + std::to_string(image.size()) + " bytes)");
  if (read_le<uint16_t>(image, kBootFlag) != kBootFlagValue) return bad_bzimage("no boot flag 0xAA55 at 0x1fe");
  if (read_le<uint32_t>(image, kHeaderMagic) != kHdrS) return bad_bzimage("no \"HdrS\" magic at 0x202 (not a Linux kernel)");
  SetupHeader h;
  h.version = read_le<uint16_t>(image, kVersion);
  if (h.version < kMinVersion) {
    return bad_bzimage("boot protocol " + std::to_string(h.version >> 8) + "." + std::to_string(h.version & 0xff) +
                       " is older than 2.12 (no declared 64-bit entry)");
  }
  h.header_end = kHeaderMagic + image[kJump + 1];
  if (h.header_end < kHeaderEndMin) return bad_bzimage("the setup header is shorter than protocol 2.12 defines");
  if (!(read_le<uint16_t>(image, kXloadflags) & kXlfKernel64)) return bad_bzimage("xloadflags lacks XLF_KERNEL_64 (no 64-bit entry)");
  if (!(image[kLoadflags] & kLoadedHigh)) return bad_bzimage("loadflags lacks LOADED_HIGH (not a bzImage)");

  const uint64_t setup_sects = image[kSetupSects] == 0 ? 4 : image[kSetupSects];
  h.setup_bytes = (setup_sects + 1) * 512;
  if (h.setup_bytes < h.header_end || h.setup_bytes >= image.size()) {
    return bad_bzimage("setup_sects " + std::to_string(setup_sects) + " puts the kernel outside the file (truncated?)");
  }
  h.kernel_bytes = image.size() - h.setup_bytes;
  const uint64_t syssize_bytes = uint64_t{read_le<uint32_t>(image, kSyssize)} * 16;
  if (syssize_bytes == 0 || syssize_bytes > h.kernel_bytes) {
    return bad_bzimage("syssize says the kernel has " + std::to_string(syssize_bytes) + " bytes, the file has " +
                       std::to_string(h.kernel_bytes) + " after the setup code (truncated?)");
  }
  h.kernel_alignment = read_le<uint32_t>(image, kKernelAlignment);
  if (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1)) != 0) {
    return bad_bzimage("kernel_alignment " + hex(h.kernel_alignment) + " is not a power of two");
  }
  h.relocatable = image[kRelocatableKernel] != 0;
  h.pref_address = read_le<uint64_t>(image, kPrefAddress);
  h.init_size = read_le<uint32_t>(image, kInitSize);
  if (h.init_size == 0) return bad_bzimage("init_size is 0");
  h.cmdline_size = read_le<uint32_t>(image, kCmdlineSize);
  h.initrd_addr_max = read_le<uint32_t>(image, kInitrdAddrMax);
  return h;
}

}  // namespace

bool looks_like_bzimage(std::span<const uint8_t> image) {
  return image.size() >= kHeaderMagic + 4 && read_le<uint16_t>(image, kBootFlag) == kBootFlagValue &&
         read_le<uint32_t>(image, kHeaderMagic) == kHdrS;
}

Result<LoadedBzImage> load_bzimage(GuestMemory& memory, std::span<const uint8_t> image) {
  auto header = parse_setup_header(image);
  if (!header.ok()) return header.error();
  const SetupHeader& h = header.value();

  // A relocatable kernel loads at 1 MiB, as QEMU does, and moves itself to an aligned address
  // of at least pref_address while decompressing; others must load at pref_address.
  LoadedBzImage kernel;
  kernel.load_address = h.relocatable ? kKernelMinAddress : h.pref_address;
  if (kernel.load_address < kKernelMinAddress) {
    return bad_bzimage("a non-relocatable kernel that wants to load at " + hex(h.pref_address) + ", below 1 MiB");
  }
  kernel.entry64 = kernel.load_address + kEntry64Offset;
  // The decompressed kernel runs at max(pref_address, the load address aligned up) and needs
  // init_size bytes there.
  // pref_address is the file's (any u64): every sum is checked, a wrap is refused.
  uint64_t aligned_load = 0, run_end = 0, load_end = 0;
  if (__builtin_add_overflow(kernel.load_address, uint64_t{h.kernel_alignment} - 1, &aligned_load)) {
    return bad_bzimage("the kernel's load address " + hex(kernel.load_address) + " is out of range");
  }
  aligned_load &= ~uint64_t{h.kernel_alignment - 1};
  const uint64_t run_address = std::max(h.pref_address, aligned_load);
  if (__builtin_add_overflow(run_address, uint64_t{h.init_size}, &run_end) ||
      __builtin_add_overflow(kernel.load_address, uint64_t{h.kernel_bytes}, &load_end)) {
    return bad_bzimage("pref_address " + hex(h.pref_address) + " plus init_size " + hex(h.init_size) +
                       " is past the end of the address space");
  }
  kernel.end_address = std::max(load_end, run_end);
  if (!memory.contains(0, kernel.end_address)) {
    return bad_bzimage("the kernel needs guest RAM up to " + hex(kernel.end_address) + " (init_size " + hex(h.init_size) +
                       " at " + hex(run_address) + "); guest memory has " + hex(memory.regions().front().size) +
                       " bytes below the MMIO hole");
  }
  kernel.cmdline_max = h.cmdline_size;
  kernel.initrd_max = h.initrd_addr_max;
  NV_TRY(memory.write(kernel.load_address, image.subspan(h.setup_bytes, h.kernel_bytes)));
  return kernel;
}

Result<uint64_t> write_linux_boot_params(GuestMemory& memory, std::span<const uint8_t> image,
                                         const LoadedBzImage& kernel, const std::string& cmdline,
                                         std::span<const uint8_t> initrd) {
  auto header = parse_setup_header(image);
  if (!header.ok()) return header.error();
  const SetupHeader& h = header.value();
  if (cmdline.size() > kernel.cmdline_max || cmdline.size() + 1 > kCmdlineMaxSize) {
    return plain_error("EINVAL", "the kernel command line has " + std::to_string(cmdline.size()) +
                                     " bytes; this kernel takes at most " + std::to_string(kernel.cmdline_max));
  }

  // The zero page: the image's setup header at its own offset, then the loader's fields.
  std::vector<uint8_t> params(kZeroPageSize, 0);
  std::memcpy(params.data() + kSetupSects, image.data() + kSetupSects, h.header_end - kSetupSects);
  auto put = [&params](uint64_t offset, auto value) { std::memcpy(params.data() + offset, &value, sizeof value); };
  put(kVidMode, uint16_t{0xffff});  // "normal" text mode; the guest has no video anyway
  params[kTypeOfLoader] = kLoaderUndefined;
  put(kCode32Start, static_cast<uint32_t>(kernel.load_address));

  std::vector<uint8_t> text(cmdline.begin(), cmdline.end());
  text.push_back(0);
  NV_TRY(memory.write(kCmdlineAddress, text));
  put(kCmdLinePtr, static_cast<uint32_t>(kCmdlineAddress));
  put(kExtCmdLinePtr, uint32_t{0});

  if (!initrd.empty()) {
    // At the top of low RAM, page-aligned, below initrd_addr_max, above what the kernel needs.
    const uint64_t top = std::min<uint64_t>(memory.regions().front().size, uint64_t{kernel.initrd_max} + 1);
    if (initrd.size() > top) return plain_error("E2BIG", "the initrd is larger than the memory the kernel can reach");
    const uint64_t address = (top - initrd.size()) & ~uint64_t{0xfff};
    if (address < kernel.end_address) {
      return plain_error("E2BIG", "kernel (" + hex(kernel.end_address) + " bytes with its init_size) and initrd (" +
                                      std::to_string(initrd.size()) + " bytes) do not fit together in guest memory");
    }
    NV_TRY(memory.write(address, initrd));
    put(kRamdiskImage, static_cast<uint32_t>(address));
    put(kRamdiskSize, static_cast<uint32_t>(initrd.size()));
    put(kExtRamdiskImage, static_cast<uint32_t>(address >> 32));
    put(kExtRamdiskSize, static_cast<uint32_t>(uint64_t{initrd.size()} >> 32));
  }

  const std::vector<RamRange> ram = guest_ram_map(memory);
  if (ram.size() > kE820MaxEntries) return plain_error("EINVAL", "too many e820 entries");
  params[kE820Entries] = static_cast<uint8_t>(ram.size());
  for (size_t i = 0; i < ram.size(); ++i) {
    // struct boot_e820_entry is packed: addr (8), size (8), type (4).
    const uint64_t at = kE820Table + i * 20;
    put(at, ram[i].address);
    put(at + 8, ram[i].size);
    put(at + 16, kE820Ram);
  }
  NV_TRY(memory.write(kZeroPageAddress, params));
  return kZeroPageAddress;
}

}  // namespace nodevisor::vmm::x86_64
