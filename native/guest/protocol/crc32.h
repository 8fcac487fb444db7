// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320; the one zlib, PNG and node:zlib's crc32
// compute), shared by the probe guest (disk checksums), the agent (disk.checksum) and the VMM
// (snapshot state files). Header-only and freestanding like frame.h: only <stdint.h> and
// <stddef.h>, so the probe (C, no libc) and the C++ code use this one definition.
// A 16-entry table, two lookups per byte: no table to build at start-up, and a 14 KiB state file
// is checked in microseconds. Pure; any thread may call it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// crc32 of each nibble value with the reflected polynomial.
static const uint32_t nv_crc32_nibble[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
    0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu, 0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
};

// Continues `crc` (start with 0) over `n` bytes and returns the CRC of everything so far.
static inline uint32_t nv_crc32_update(uint32_t crc, const void* data, size_t n) {
  const unsigned char* bytes = (const unsigned char*)data;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= bytes[i];
    crc = (crc >> 4) ^ nv_crc32_nibble[crc & 0xfu];
    crc = (crc >> 4) ^ nv_crc32_nibble[crc & 0xfu];
  }
  return ~crc;
}

#ifdef __cplusplus
}
#endif
