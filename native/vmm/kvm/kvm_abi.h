// KVM ioctl numbers whose argument struct ends in a flexible array.
//
// The uapi headers declare those arrays with __DECLARE_FLEX_ARRAY, which in C++ adds a
// one-byte empty struct before the array: in C++ sizeof(kvm_cpuid2) is 12 and `entries` sits
// at offset 12, where the kernel (C layout) has both at 8. So the ioctl numbers <linux/kvm.h>
// builds from sizeof() are wrong in C++ (KVM answers EINVAL), and `->entries` must not be
// used. These are the kernel's numbers, and buffers are laid out by hand: an 8-byte count
// header, then the entries (see CountedBuffer).
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace nodevisor::vmm::kvm_abi {

// `struct { __u32 count; __u32 padding; }`: the fixed part of kvm_cpuid2 and kvm_msrs.
struct CountHeader {
  uint32_t count;
  uint32_t padding;
};
static_assert(sizeof(CountHeader) == 8);

constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CountHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CountHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, CountHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, CountHeader);

// kvm_xsave is 4096 bytes of region plus a flexible `extra[]` (for KVM_GET_XSAVE2): 4100 in
// C++. The legacy 4 KiB XSAVE area is what KVM_GET/SET_XSAVE move.
struct XsaveArea {
  uint32_t region[1024];
};
static_assert(sizeof(XsaveArea) == 4096);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveArea);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveArea);

// A kernel-layout `{count, padding, Entry entries[count]}` buffer.
template <typename Entry>
class CountedBuffer {
 public:
  explicit CountedBuffer(size_t capacity) : bytes_(sizeof(CountHeader) + capacity * sizeof(Entry)) {
    set_count(static_cast<uint32_t>(capacity));
  }
  void* data() { return bytes_.data(); }
  uint32_t count() const {
    CountHeader header;
    std::memcpy(&header, bytes_.data(), sizeof header);
    return header.count;
  }
  void set_count(uint32_t count) {
    CountHeader header{count, 0};
    std::memcpy(bytes_.data(), &header, sizeof header);
  }
  size_t capacity() const { return (bytes_.size() - sizeof(CountHeader)) / sizeof(Entry); }
  Entry get(size_t i) const {
    Entry entry;
    std::memcpy(&entry, bytes_.data() + sizeof(CountHeader) + i * sizeof(Entry), sizeof(Entry));
    return entry;
  }
  void put(size_t i, const Entry& entry) {
    std::memcpy(bytes_.data() + sizeof(CountHeader) + i * sizeof(Entry), &entry, sizeof(Entry));
  }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace nodevisor::vmm::kvm_abi
