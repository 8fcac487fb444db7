// Guest RAM: one memfd (so a snapshot can copy or map it) mapped once into this process and
// registered with KVM as one or two slots (below and above the 32-bit MMIO hole).
//
// Every access to guest memory in nodevisor goes through this class. Guest-physical addresses
// and lengths are untrusted: each accessor checks `address + length` without overflow against
// one region and returns an error instead of touching memory outside it. Host pointers never
// leave the class (rust-vmm's vm-memory is the model).
//
// Threads: built on the creating thread; afterwards read/write are safe from any thread (they
// are plain memcpy into a mapping whose layout never changes while the VM lives).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm {

struct GuestRegion {
  uint64_t guest_address;  // first guest-physical byte
  uint64_t size;           // bytes
  uint64_t file_offset;    // offset in the memfd and in the host mapping
};

class GuestMemory {
 public:
  // Start of the 32-bit MMIO hole (LAPIC, IOAPIC, virtio-mmio); RAM above it moves to 4 GiB.
  static constexpr uint64_t kMmioHoleStart = 0xc000'0000;
  static constexpr uint64_t kMmioHoleEnd = 0x1'0000'0000;

  static Result<GuestMemory> create(uint64_t size_bytes);
  // Guest RAM mapped copy-on-write (MAP_PRIVATE) from a snapshot's memory file, which must be
  // exactly `size_bytes` long: nothing is copied, clones of one snapshot share its page cache
  // until they write. Takes ownership of `file`.
  static Result<GuestMemory> map_private(UniqueFd file, uint64_t size_bytes);

  // Writes guest RAM to `fd` (a new, empty file) as a sparse image of size() bytes: only the
  // pages that hold data are written (those the backing file has, and those this mapping
  // made its own), so a 2 GiB guest that touched 10 MiB writes 10 MiB. The VM must be paused.
  Status write_image(int fd) const;

  GuestMemory(GuestMemory&&) noexcept;
  GuestMemory& operator=(GuestMemory&&) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  uint64_t size() const { return size_; }
  const std::vector<GuestRegion>& regions() const { return regions_; }
  int memfd() const { return memfd_.get(); }

  // True when [address, address + length) lies inside one RAM region.
  bool contains(uint64_t address, uint64_t length) const;

  Status read(uint64_t address, std::span<uint8_t> out) const;
  Status write(uint64_t address, std::span<const uint8_t> in);
  Status fill_zero(uint64_t address, uint64_t length);
  // Makes the host pages of [address, address + length) present and this mapping's own, as a
  // write would (MADV_POPULATE_WRITE: a copy-on-write mapping copies them now), without
  // changing their content. A hint: a range outside RAM, or a kernel without it, does nothing.
  // For pages the host will write soon, so that the write does not fault then.
  void prefault(uint64_t address, uint64_t length);

  template <typename T>
  Result<T> read_obj(uint64_t address) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value{};
    NV_TRY(read(address, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T))));
    return value;
  }
  template <typename T>
  Status write_obj(uint64_t address, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(address, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

  // For KVM_SET_USER_MEMORY_REGION only (kvm/kvm_vm.cc): the host address of a region.
  // The one place a host pointer leaves, and it goes straight to the kernel.
  uint64_t host_address_for_kvm(const GuestRegion& region) const;

 private:
  GuestMemory() = default;
  // Host pointer for [address, address + length) or nullptr when outside guest RAM.
  uint8_t* checked_host_range(uint64_t address, uint64_t length) const;

  UniqueFd memfd_;
  uint8_t* mapping_ = nullptr;
  uint64_t size_ = 0;
  std::vector<GuestRegion> regions_;
};

}  // namespace nodevisor::vmm
