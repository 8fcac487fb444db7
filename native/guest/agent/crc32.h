// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320; the zlib/PNG one) for disk.checksum,
// computed the same way as the probe guest and the host's tests (node:zlib crc32), and for the
// VMM's snapshot state files. Table-driven (one lookup per byte; the table is built at compile
// time): a clone's state file is checked on every restore, where a bit-at-a-time loop cost
// ~0.1 ms for 14 KiB.
#ifndef NODEVISOR_AGENT_CRC32_H
#define NODEVISOR_AGENT_CRC32_H

#include <array>
#include <cstddef>
#include <cstdint>

namespace nv::agent {

namespace crc32_detail {
constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    table[n] = c;
  }
  return table;
}
inline constexpr std::array<uint32_t, 256> kTable = make_table();
}  // namespace crc32_detail

class Crc32 {
 public:
  void update(const unsigned char* data, size_t size) {
    for (size_t i = 0; i < size; ++i) crc_ = crc32_detail::kTable[(crc_ ^ data[i]) & 0xff] ^ (crc_ >> 8);
  }
  uint32_t value() const { return ~crc_; }

 private:
  uint32_t crc_ = 0xffffffffu;
};

}  // namespace nv::agent

#endif
