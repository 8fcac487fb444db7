// Save/restore byte streams for device and vCPU state: fixed-width little-endian fields,
// a per-component tag and version up front, and bounds-checked reads (state files are
// untrusted input: a truncated or foreign blob gives an error, never an out-of-bounds read).
//
// Runs on: whichever thread saves or restores (the VM must be paused).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "sys/result.h"

namespace nodevisor::vmm {

class StateWriter {
 public:
  StateWriter(uint32_t tag, uint32_t version) {
    put(tag);
    put(version);
  }
  template <typename T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &value, sizeof(T));
  }
  void put_bytes(std::span<const uint8_t> bytes) {
    put(static_cast<uint32_t>(bytes.size()));
    const size_t at = out_.size();
    out_.resize(at + bytes.size());
    if (!bytes.empty()) std::memcpy(out_.data() + at, bytes.data(), bytes.size());
  }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

class StateReader {
 public:
  explicit StateReader(std::span<const uint8_t> in) : in_(in) {}

  // Checks the component tag and version written by StateWriter.
  Status expect_header(uint32_t tag, uint32_t version, const char* what) {
    uint32_t got_tag = 0, got_version = 0;
    if (!get(got_tag) || !get(got_version) || got_tag != tag) {
      return plain_error("ESTATE", std::string("not a saved ") + what + " state");
    }
    if (got_version != version) {
      return plain_error("ESTATE", std::string("unsupported ") + what + " state version " +
                                       std::to_string(got_version));
    }
    return {};
  }
  template <typename T>
  [[nodiscard]] bool get(T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(&value, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  // A length-prefixed byte string of at most `max_size` bytes.
  [[nodiscard]] bool get_bytes(std::vector<uint8_t>& out, size_t max_size) {
    uint32_t size = 0;
    if (!get(size) || size > max_size || in_.size() - pos_ < size) return false;
    out.assign(in_.begin() + pos_, in_.begin() + pos_ + size);
    pos_ += size;
    return true;
  }
  bool at_end() const { return pos_ == in_.size(); }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

inline Error truncated_state(const char* what) {
  return plain_error("ESTATE", std::string("saved ") + what + " state is truncated or malformed");
}

// The state of a device whose whole state is one value (the debug port's last code, the i8042's
// last command): a header and the value.
template <typename T>
std::vector<uint8_t> save_single(uint32_t tag, uint32_t version, T value) {
  StateWriter w(tag, version);
  w.put(value);
  return w.take();
}
template <typename T>
Result<T> restore_single(std::span<const uint8_t> state, uint32_t tag, uint32_t version, const char* what) {
  StateReader r(state);
  NV_TRY(r.expect_header(tag, version, what));
  T value{};
  if (!r.get(value) || !r.at_end()) return truncated_state(what);
  return value;
}

// Tags: four ASCII letters, little-endian.
constexpr uint32_t state_tag(const char (&name)[5]) {
  return static_cast<uint32_t>(name[0]) | static_cast<uint32_t>(name[1]) << 8 |
         static_cast<uint32_t>(name[2]) << 16 | static_cast<uint32_t>(name[3]) << 24;
}

}  // namespace nodevisor::vmm
