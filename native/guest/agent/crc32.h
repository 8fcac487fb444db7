// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320; the zlib/PNG one) for disk.checksum,
// computed the same way as the probe guest and the host's tests (node:zlib crc32).
#ifndef NODEVISOR_AGENT_CRC32_H
#define NODEVISOR_AGENT_CRC32_H

#include <cstddef>
#include <cstdint>

namespace nv::agent {

class Crc32 {
 public:
  void update(const unsigned char* data, size_t size) {
    for (size_t i = 0; i < size; ++i) {
      crc_ ^= data[i];
      for (int bit = 0; bit < 8; ++bit) crc_ = (crc_ >> 1) ^ (0xedb88320u & (0u - (crc_ & 1u)));
    }
  }
  uint32_t value() const { return ~crc_; }

 private:
  uint32_t crc_ = 0xffffffffu;
};

}  // namespace nv::agent

#endif
