#include "crc32.h"

// crc32 of each nibble value with the reflected polynomial 0xEDB88320.
static const u32 kNibble[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
    0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu, 0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
};

u32 crc32_update(u32 crc, const u8* data, u64 n) {
  crc = ~crc;
  for (u64 i = 0; i < n; i++) {
    crc ^= data[i];
    crc = (crc >> 4) ^ kNibble[crc & 0xf];
    crc = (crc >> 4) ^ kNibble[crc & 0xf];
  }
  return ~crc;
}
