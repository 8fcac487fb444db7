// A flat (base 0, 4 GiB, page-granular) segment register as KVM_SET_SREGS takes it: the one
// builder behind every boot path's CS/DS/SS (PVH, the probe's long-mode entry).
//
// Runs on: the VM-building thread.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace nodevisor::vmm::x86_64 {

// `type`: 0xb code execute/read accessed, 0x3 data read/write accessed. `code64`: a 64-bit code
// segment (L set, D clear, as the two are exclusive). `dpl`: privilege level 0 or 3.
inline kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64 = false, uint8_t dpl = 0) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = dpl;
  s.db = code64 ? 0 : 1;
  s.s = 1;
  s.l = code64 ? 1 : 0;
  s.g = 1;
  return s;
}

}  // namespace nodevisor::vmm::x86_64
