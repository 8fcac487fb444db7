#include "vmm/snapshot/state_file.h"

#include <cstring>

#include "guest/protocol/crc32.h"

namespace nodevisor::vmm::snapshot {

uint32_t state_crc32(std::span<const uint8_t> bytes) {
  // The project's one CRC-32 (zlib's polynomial): a state file can be checked with any zlib
  // crc32 too.
  return nv_crc32_update(0, bytes.data(), bytes.size());
}

Error bad_snapshot(const std::string& path, const std::string& what) {
  Error e = plain_error("EBADSNAPSHOT", path + ": " + what);
  e.path = path;
  return e;
}

std::vector<uint8_t> seal_state_file(std::span<const uint8_t> payload) {
  StateFileHeader header{};
  std::memcpy(header.magic, kStateFileMagic, sizeof header.magic);
  header.version = kStateFileVersion;
  header.header_size = kStateFileHeaderSize;
  header.payload_size = payload.size();
  header.payload_crc32 = state_crc32(payload);
  std::vector<uint8_t> out(sizeof header + payload.size());
  std::memcpy(out.data(), &header, sizeof header);
  if (!payload.empty()) std::memcpy(out.data() + sizeof header, payload.data(), payload.size());
  return out;
}

Result<std::span<const uint8_t>> open_state_file(std::span<const uint8_t> file, const std::string& path) {
  if (file.size() > kMaxStateFileBytes) {
    return bad_snapshot(path, "state file is " + std::to_string(file.size()) + " bytes, over the " +
                                  std::to_string(kMaxStateFileBytes >> 20) + " MiB cap");
  }
  StateFileHeader header{};
  if (file.size() < sizeof header) {
    if (file.size() >= sizeof header.magic && std::memcmp(file.data(), kStateFileMagic, sizeof header.magic) != 0) {
      return bad_snapshot(path, "not a nodevisor snapshot state file (bad magic)");
    }
    return bad_snapshot(path, "state file is truncated (" + std::to_string(file.size()) +
                                  " bytes, shorter than its 32-byte header)");
  }
  std::memcpy(&header, file.data(), sizeof header);
  if (std::memcmp(header.magic, kStateFileMagic, sizeof header.magic) != 0) {
    return bad_snapshot(path, "not a nodevisor snapshot state file (bad magic)");
  }
  if (header.version != kStateFileVersion) {
    return bad_snapshot(path, "state file format version " + std::to_string(header.version) +
                                  " is not supported (this nodevisor reads version " +
                                  std::to_string(kStateFileVersion) + ")");
  }
  if (header.header_size != kStateFileHeaderSize || header.reserved != 0) {
    return bad_snapshot(path, "state file header is malformed");
  }
  const uint64_t have = file.size() - sizeof header;
  if (header.payload_size > have) {
    return bad_snapshot(path, "state file is truncated (the header announces " + std::to_string(header.payload_size) +
                                  " payload bytes, the file has " + std::to_string(have) + ")");
  }
  if (header.payload_size < have) {
    return bad_snapshot(path, "state file has " + std::to_string(have - header.payload_size) +
                                  " unexpected bytes after its payload");
  }
  auto payload = file.subspan(sizeof header);
  if (state_crc32(payload) != header.payload_crc32) {
    return bad_snapshot(path, "state file is corrupted (checksum mismatch)");
  }
  return payload;
}

std::string snapshot_file(const std::string& dir, const char* name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

}  // namespace nodevisor::vmm::snapshot
