// CRC-32 (IEEE 802.3, as zlib computes it), with a 16-entry table: two lookups per byte,
// no table to build at start-up.
#ifndef NODEVISOR_PROBE_CRC32_H
#define NODEVISOR_PROBE_CRC32_H

#include "probe.h"

// Continues `crc` (start with 0) over `n` bytes.
u32 crc32_update(u32 crc, const u8* data, u64 n);

#endif
