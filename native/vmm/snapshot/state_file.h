// The container of a snapshot's state file (`<dir>/state`, docs/snapshot-format.md): a fixed
// 32-byte header — magic, format version, payload size, CRC-32 of the payload — then the
// payload. A state file is untrusted input (it may be truncated, corrupted, from another
// nodevisor version, or crafted): `open_state_file` checks all of that, and the size cap,
// before anything parses the payload, and names the file and what is wrong.
//
// Runs on: the thread that snapshots or restores (a libuv worker); pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sys/result.h"

namespace nodevisor::vmm::snapshot {

inline constexpr char kStateFileMagic[8] = {'N', 'V', 'S', 'N', 'A', 'P', '\r', '\n'};
inline constexpr uint32_t kStateFileVersion = 1;
inline constexpr uint32_t kStateFileHeaderSize = 32;
// Console buffers (2 × 4 MiB per console at most) dominate; everything else is a few KiB
// per vCPU and device.
inline constexpr uint64_t kMaxStateFileBytes = 64ull << 20;

// The header, as laid out in the file (little-endian; x86-64 only).
struct StateFileHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint64_t payload_size;
  uint32_t payload_crc32;
  uint32_t reserved;
};
static_assert(sizeof(StateFileHeader) == kStateFileHeaderSize);

// Header + payload, ready to be written.
std::vector<uint8_t> seal_state_file(std::span<const uint8_t> payload);

// Checks the header and checksum of a whole state file's bytes and returns the payload.
// `path` names the file in errors (code EBADSNAPSHOT).
Result<std::span<const uint8_t>> open_state_file(std::span<const uint8_t> file, const std::string& path);

// CRC-32 (the zlib one) of `bytes`.
uint32_t state_crc32(std::span<const uint8_t> bytes);

// An EBADSNAPSHOT error naming `path`.
Error bad_snapshot(const std::string& path, const std::string& what);

// `dir/name`: the path of a snapshot directory's file ("state", "memory").
std::string snapshot_file(const std::string& dir, const char* name);

}  // namespace nodevisor::vmm::snapshot
