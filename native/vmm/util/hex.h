// "0x1f": how error messages show guest addresses, sizes and bit masks.
//
// Runs on: any thread; pure.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace nodevisor::vmm {

inline std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace nodevisor::vmm
