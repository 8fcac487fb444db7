// libFuzzer target: one virtio-blk request with a fuzzer-made descriptor chain, header and
// data, against a real (small) disk image. Every outcome must be a status byte or nothing;
// never an access outside guest memory or the disk, never an overflow.
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "fuzz/fuzz_guest.h"
#include "vmm/devices/virtio/block/block_request.h"

using namespace nodevisor;
using namespace nodevisor::vmm::virtio;

namespace {

const BlockBackend& disk() {
  static BlockBackend backend = [] {
    char path[] = "/tmp/nodevisor-fuzz-disk-XXXXXX";
    int fd = mkstemp(path);
    (void)!ftruncate(fd, 64 * 1024);  // 128 sectors
    close(fd);
    auto b = BlockBackend::open(path, false);
    unlink(path);  // the open fd keeps it alive
    return std::move(b).value();
  }();
  return backend;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  auto& mem = fuzz::fuzz_memory();
  DescriptorChain chain = fuzz::take_chain(in, mem);
  const bool with_backend = in.take<uint8_t>() & 1;
  fuzz::fill_memory(mem, in.rest(), 0);
  static std::vector<uint8_t> bounce(kBounceBufferBytes);
  (void)handle_block_request(mem, chain, with_backend ? &disk() : nullptr, "fuzz-serial", bounce);
  return 0;
}
