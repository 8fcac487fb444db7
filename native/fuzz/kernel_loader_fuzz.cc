// libFuzzer target: the kernel loaders on a fuzzer-made image (the kernel file is the user's,
// but a tampered or truncated one must give a reason, never a crash). The first byte picks the
// entry (the probe's CPL-3 note or PVH) and how much of the input is the initrd; the rest is
// the image, recognised by content like Vm::build does: an ELF (program headers, the Xen PVH
// and nodevisor notes) or a bzImage (the setup header, pref_address, init_size). A loaded
// image then gets its boot data (hvm_start_info or boot_params, the command line, the initrd,
// the e820 map). Every address the loaders write must lie in guest memory.
#include "fuzz/fuzz_guest.h"
#include "vmm/arch/x86_64/kernel_image.h"

using namespace nodevisor;
using namespace nodevisor::vmm;

namespace {

// Loaders place kernels at 1 MiB and above: 8 MiB leaves room for small images and makes
// "does not fit" reachable.
GuestMemory& loader_memory() {
  static GuestMemory mem = std::move(GuestMemory::create(8 << 20)).value();
  return mem;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::span<const uint8_t> rest(data + 1, size - 1);
  // Up to a quarter of the rest, from its end, is the initrd.
  const size_t initrd_bytes = (mode >> 1) % 4 == 0 ? 0 : rest.size() / (4 * ((mode >> 1) % 4));
  std::span<const uint8_t> image = rest.first(rest.size() - initrd_bytes);
  std::span<const uint8_t> initrd = rest.last(initrd_bytes);
  auto& mem = loader_memory();
  (void)mem.fill_zero(0, 8 << 20);
  auto loaded = x86_64::load_kernel_image(mem, image, (mode & 1) != 0);
  if (!loaded.ok()) return 0;
  if (loaded->end_address > (8u << 20)) __builtin_trap();  // loaded past guest memory
  auto boot = x86_64::write_boot_data(mem, image, loaded.value(), "console=ttyS0 fuzz=1", initrd);
  if (boot.ok() && !mem.contains(boot->boot_data, 1)) __builtin_trap();
  return 0;
}
