#include "vmm/memory/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace nodevisor::vmm {

namespace {

std::vector<GuestRegion> regions_for(uint64_t size_bytes) {
  if (size_bytes <= GuestMemory::kMmioHoleStart) return {{0, size_bytes, 0}};
  return {{0, GuestMemory::kMmioHoleStart, 0},
          {GuestMemory::kMmioHoleEnd, size_bytes - GuestMemory::kMmioHoleStart, GuestMemory::kMmioHoleStart}};
}

}  // namespace

Result<GuestMemory> GuestMemory::create(uint64_t size_bytes) {
  constexpr uint64_t kPage = 4096;
  if (size_bytes == 0 || size_bytes % kPage != 0) {
    return plain_error("EINVAL", "guest memory size must be a non-zero multiple of 4 KiB");
  }
  GuestMemory mem;
  // The memfd is sparse: pages cost host memory only once the guest or the loader touches them.
  mem.memfd_.reset(memfd_create("nodevisor-guest-ram", MFD_CLOEXEC));
  if (!mem.memfd_.valid()) return sys_error(errno, "memfd_create", "cannot create guest memory");
  if (ftruncate(mem.memfd_.get(), static_cast<off_t>(size_bytes)) != 0) {
    return sys_error(errno, "ftruncate", "cannot size guest memory");
  }
  void* map = mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                   mem.memfd_.get(), 0);
  if (map == MAP_FAILED) return sys_error(errno, "mmap", "cannot map guest memory");
  mem.mapping_ = static_cast<uint8_t*>(map);
  mem.size_ = size_bytes;
  mem.regions_ = regions_for(size_bytes);
  return mem;
}


Result<GuestMemory> GuestMemory::map_private(UniqueFd file, uint64_t size_bytes) {
  constexpr uint64_t kPage = 4096;
  if (size_bytes == 0 || size_bytes % kPage != 0) {
    return plain_error("EINVAL", "guest memory size must be a non-zero multiple of 4 KiB");
  }
  GuestMemory mem;
  // MAP_NORESERVE: a clone is charged only for the pages it writes, not for all of its RAM.
  void* map = mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, file.get(), 0);
  if (map == MAP_FAILED) return sys_error(errno, "mmap", "cannot map the snapshot's guest memory");
  mem.memfd_ = std::move(file);
  mem.mapping_ = static_cast<uint8_t*>(map);
  mem.size_ = size_bytes;
  mem.regions_ = regions_for(size_bytes);
  return mem;
}

Status GuestMemory::write_image(int fd) const {
  constexpr uint64_t kPage = 4096;
  const uint64_t pages = size_ / kPage;
  // A page holds data when the backing file has data there (SEEK_DATA; this also covers a
  // snapshot file on a disk whose pages are not cached) or when it is resident in this
  // mapping (mincore: pages written by the guest, private copies of a clone). Everything
  // else reads as zeros and stays a hole in the image.
  std::vector<uint8_t> resident(pages);
  if (mincore(mapping_, size_, resident.data()) != 0) {
    return sys_error(errno, "mincore", "cannot find which guest pages hold data");
  }
  off_t at = 0;
  for (;;) {
    const off_t data = lseek(memfd_.get(), at, SEEK_DATA);
    if (data < 0) break;  // ENXIO: no more data (or no SEEK_DATA: mincore alone decides)
    off_t hole = lseek(memfd_.get(), data, SEEK_HOLE);
    if (hole < 0 || static_cast<uint64_t>(hole) > size_) hole = static_cast<off_t>(size_);
    for (uint64_t p = static_cast<uint64_t>(data) / kPage; p < (static_cast<uint64_t>(hole) + kPage - 1) / kPage && p < pages; ++p) {
      resident[p] |= 1;
    }
    if (static_cast<uint64_t>(hole) >= size_) break;
    at = hole;
  }
  if (ftruncate(fd, static_cast<off_t>(size_)) != 0) return sys_error(errno, "ftruncate", "cannot size the memory file");
  uint64_t p = 0;
  while (p < pages) {
    if (!(resident[p] & 1)) {
      ++p;
      continue;
    }
    uint64_t end = p;
    while (end < pages && (resident[end] & 1)) ++end;
    const uint8_t* from = mapping_ + p * kPage;
    uint64_t left = (end - p) * kPage;
    off_t offset = static_cast<off_t>(p * kPage);
    while (left > 0) {
      const ssize_t n = pwrite(fd, from, left, offset);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return sys_error(n < 0 ? errno : EIO, "pwrite", "cannot write the memory file");
      from += n;
      offset += n;
      left -= static_cast<uint64_t>(n);
    }
    p = end;
  }
  return {};
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : memfd_(std::move(other.memfd_)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      regions_(std::move(other.regions_)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    if (mapping_ != nullptr) munmap(mapping_, size_);
    memfd_ = std::move(other.memfd_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    size_ = std::exchange(other.size_, 0);
    regions_ = std::move(other.regions_);
  }
  return *this;
}

GuestMemory::~GuestMemory() {
  if (mapping_ != nullptr) munmap(mapping_, size_);
}

uint8_t* GuestMemory::checked_host_range(uint64_t address, uint64_t length) const {
  for (const GuestRegion& region : regions_) {
    if (address < region.guest_address) continue;
    const uint64_t offset = address - region.guest_address;
    // offset < size and length <= size - offset: no addition that could overflow.
    if (offset >= region.size || length > region.size - offset) continue;
    return mapping_ + region.file_offset + offset;
  }
  return nullptr;
}

bool GuestMemory::contains(uint64_t address, uint64_t length) const {
  return checked_host_range(address, length) != nullptr;
}

static Error out_of_range(uint64_t address, uint64_t length) {
  char text[128];
  snprintf(text, sizeof text, "guest memory access [0x%llx, +0x%llx) is outside guest RAM",
           static_cast<unsigned long long>(address), static_cast<unsigned long long>(length));
  return plain_error("EFAULT", text);
}

Status GuestMemory::read(uint64_t address, std::span<uint8_t> out) const {
  const uint8_t* host = checked_host_range(address, out.size());
  if (host == nullptr) return out_of_range(address, out.size());
  std::memcpy(out.data(), host, out.size());
  return {};
}

Status GuestMemory::write(uint64_t address, std::span<const uint8_t> in) {
  uint8_t* host = checked_host_range(address, in.size());
  if (host == nullptr) return out_of_range(address, in.size());
  std::memcpy(host, in.data(), in.size());
  return {};
}

Status GuestMemory::fill_zero(uint64_t address, uint64_t length) {
  uint8_t* host = checked_host_range(address, length);
  if (host == nullptr) return out_of_range(address, length);
  std::memset(host, 0, length);
  return {};
}

void GuestMemory::prefault(uint64_t address, uint64_t length) {
  uint8_t* host = checked_host_range(address, length);
  if (host == nullptr || length == 0) return;
  // Whole pages around the range; the mapping is page-aligned, so they stay inside it.
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(host) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(host) + length + page - 1) & ~(page - 1);
#ifdef MADV_POPULATE_WRITE
  (void)madvise(reinterpret_cast<void*>(first), end - first, MADV_POPULATE_WRITE);  // a hint: errors do not matter
#else
  (void)first;
  (void)end;
#endif
}

uint64_t GuestMemory::host_address_for_kvm(const GuestRegion& region) const {
  return reinterpret_cast<uint64_t>(mapping_ + region.file_offset);
}

}  // namespace nodevisor::vmm
