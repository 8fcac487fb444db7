#include "vmm/acpi/aml.h"

namespace nodevisor::vmm::acpi {

namespace {

constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;
constexpr uint8_t kRootChar = '\\';

void append(std::vector<uint8_t>& out, const std::vector<uint8_t>& more) { out.insert(out.end(), more.begin(), more.end()); }

void put_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A NamePath: optional root prefix, then dot-separated segments (at most two here).
std::vector<uint8_t> name_path(const std::string& path) {
  std::vector<uint8_t> out;
  size_t i = 0;
  if (!path.empty() && path[0] == '\\') {
    out.push_back(kRootChar);
    i = 1;
  }
  std::vector<std::string> segs;
  while (i <= path.size()) {
    size_t dot = path.find('.', i);
    if (dot == std::string::npos) dot = path.size();
    if (dot > i) segs.push_back(path.substr(i, dot - i));
    i = dot + 1;
  }
  if (segs.size() == 2) out.push_back(0x2e);  // DualNamePrefix
  for (const auto& s : segs) append(out, Aml::name_seg(s));
  return out;
}

}  // namespace

std::vector<uint8_t> Aml::name_seg(const std::string& name) {
  std::vector<uint8_t> out(4, '_');
  for (size_t i = 0; i < 4 && i < name.size(); i++) out[i] = static_cast<uint8_t>(name[i]);
  return out;
}

std::vector<uint8_t> Aml::pkg_length(size_t body_length) {
  // The length counts its own encoding: try 1, 2, 3, 4 bytes.
  for (int n = 1; n <= 4; n++) {
    const size_t total = body_length + n;
    if (n == 1 && total < 0x40) return {static_cast<uint8_t>(total)};
    if (n > 1 && total < (size_t{1} << (4 + 8 * (n - 1)))) {
      std::vector<uint8_t> out;
      out.push_back(static_cast<uint8_t>(((n - 1) << 6) | (total & 0x0f)));
      for (int k = 1; k < n; k++) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * (k - 1))));
      return out;
    }
  }
  return {};  // > 256 MiB: never for our tables
}

std::vector<uint8_t> Aml::scope(const std::string& path, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> inner = name_path(path);
  append(inner, body);
  std::vector<uint8_t> out{kScopeOp};
  append(out, pkg_length(inner.size()));
  append(out, inner);
  return out;
}

std::vector<uint8_t> Aml::device(const std::string& name, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> inner = name_path(name);
  append(inner, body);
  std::vector<uint8_t> out{kExtOpPrefix, kDeviceOp};
  append(out, pkg_length(inner.size()));
  append(out, inner);
  return out;
}

std::vector<uint8_t> Aml::name(const std::string& name, const std::vector<uint8_t>& value) {
  std::vector<uint8_t> out{kNameOp};
  append(out, name_path(name));
  append(out, value);
  return out;
}

std::vector<uint8_t> Aml::string(const std::string& s) {
  // Sized up front and filled byte by byte (GCC 12 warns falsely on vector::insert here).
  std::vector<uint8_t> out(s.size() + 2, 0);
  out[0] = kStringPrefix;
  for (size_t i = 0; i < s.size(); i++) out[i + 1] = static_cast<uint8_t>(s[i]);
  return out;
}

std::vector<uint8_t> Aml::integer(uint64_t v) {
  std::vector<uint8_t> out;
  if (v == 0) return {kZeroOp};
  if (v == 1) return {kOneOp};
  if (v <= 0xff) {
    out.push_back(kBytePrefix);
    put_le(out, v, 1);
  } else if (v <= 0xffff) {
    out.push_back(kWordPrefix);
    put_le(out, v, 2);
  } else if (v <= 0xffff'ffff) {
    out.push_back(kDWordPrefix);
    put_le(out, v, 4);
  } else {
    out.push_back(kQWordPrefix);
    put_le(out, v, 8);
  }
  return out;
}

std::vector<uint8_t> Aml::resource_template(const std::vector<uint8_t>& descriptors) {
  std::vector<uint8_t> data = descriptors;
  data.push_back(0x79);  // End Tag
  data.push_back(0x00);  // checksum 0: "treat as correct" (§6.4.2.9)
  std::vector<uint8_t> inner = integer(data.size());
  append(inner, data);
  std::vector<uint8_t> out{kBufferOp};
  append(out, pkg_length(inner.size()));
  append(out, inner);
  return out;
}

std::vector<uint8_t> Aml::memory32_fixed(uint32_t base, uint32_t length) {
  std::vector<uint8_t> out{0x86, 9, 0, 1 /* read-write */};
  put_le(out, base, 4);
  put_le(out, length, 4);
  return out;
}

std::vector<uint8_t> Aml::interrupt(uint32_t irq) {
  // Flags: bit 0 consumer, bit 1 edge-triggered; active high, exclusive.
  std::vector<uint8_t> out{0x89, 6, 0, 0x03, 1};
  put_le(out, irq, 4);
  return out;
}

}  // namespace nodevisor::vmm::acpi
