#include "vmm/acpi/acpi_tables.h"

#include <cstring>
#include <string>

#include "vmm/acpi/aml.h"

namespace nodevisor::vmm::acpi {

namespace {

constexpr char kOemId[] = "NODEVS";      // 6 characters
constexpr char kOemTableId[] = "NODEVISR";  // 8 characters
constexpr uint32_t kOemRevision = 1;
constexpr char kCreatorId[] = "NVSR";
constexpr uint32_t kCreatorRevision = 1;

void put_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void set_le(std::vector<uint8_t>& out, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) out[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// The 36-byte System Description Table header; length and checksum are fixed up by finish().
std::vector<uint8_t> header(const char (&signature)[5], uint8_t revision) {
  std::vector<uint8_t> t(signature, signature + 4);
  put_le(t, 0, 4);  // length
  t.push_back(revision);
  t.push_back(0);  // checksum
  t.insert(t.end(), kOemId, kOemId + 6);
  t.insert(t.end(), kOemTableId, kOemTableId + 8);
  put_le(t, kOemRevision, 4);
  t.insert(t.end(), kCreatorId, kCreatorId + 4);
  put_le(t, kCreatorRevision, 4);
  return t;
}

void finish(std::vector<uint8_t>& t) {
  set_le(t, 4, t.size(), 4);
  t[9] = 0;
  t[9] = static_cast<uint8_t>(-acpi_sum(t));
}

std::vector<uint8_t> dsdt(const AcpiConfig& config) {
  std::vector<uint8_t> body;
  for (size_t i = 0; i < config.virtio_devices.size(); i++) {
    const auto& d = config.virtio_devices[i];
    // Device names V000..VFFF: four characters, unique per device (at most 4096 devices).
    static constexpr char kHex[] = "0123456789ABCDEF";
    const std::string name = {'V', kHex[(i >> 8) & 0xf], kHex[(i >> 4) & 0xf], kHex[i & 0xf]};
    std::vector<uint8_t> dev;
    auto add = [&](const std::vector<uint8_t>& part) { dev.insert(dev.end(), part.begin(), part.end()); };
    add(Aml::name("_HID", Aml::string("LNRO0005")));
    add(Aml::name("_UID", Aml::integer(i)));
    add(Aml::name("_CCA", Aml::integer(1)));  // cache-coherent DMA
    std::vector<uint8_t> resources = Aml::memory32_fixed(static_cast<uint32_t>(d.base), static_cast<uint32_t>(d.size));
    auto irq = Aml::interrupt(d.irq);
    resources.insert(resources.end(), irq.begin(), irq.end());
    add(Aml::name("_CRS", Aml::resource_template(resources)));
    auto encoded = Aml::device(name, dev);
    body.insert(body.end(), encoded.begin(), encoded.end());
  }
  std::vector<uint8_t> t = header("DSDT", 2);
  auto scope = Aml::scope("\\_SB_", body);
  t.insert(t.end(), scope.begin(), scope.end());
  finish(t);
  return t;
}

std::vector<uint8_t> fadt(uint64_t dsdt_address) {
  std::vector<uint8_t> t = header("FACP", 6);
  t.resize(276, 0);  // ACPI 6.x FADT length
  // Flags (offset 112): HW_REDUCED_ACPI (bit 20); the VM has no legacy fixed hardware.
  set_le(t, 112, 1u << 20, 4);
  // IA-PC boot architecture flags (offset 109): no VGA (bit 2), no CMOS RTC (bit 5),
  // i8042 present for the reset (bit 1).
  set_le(t, 109, (1u << 1) | (1u << 2) | (1u << 5), 2);
  t[131] = 5;  // FADT minor version (6.5)
  set_le(t, 140, dsdt_address, 8);  // X_DSDT
  std::memcpy(t.data() + 268, kOemTableId, 8);  // Hypervisor Vendor Identity: "NODEVISR"
  finish(t);
  return t;
}

std::vector<uint8_t> madt(const AcpiConfig& config) {
  std::vector<uint8_t> t = header("APIC", 5);
  put_le(t, config.lapic_address, 4);
  put_le(t, 0, 4);  // flags: no dual 8259 PICs
  for (uint32_t i = 0; i < config.vcpus; i++) {
    // Processor Local APIC: type 0, length 8, processor uid, APIC id, flags (enabled).
    t.push_back(0);
    t.push_back(8);
    t.push_back(static_cast<uint8_t>(i));
    t.push_back(static_cast<uint8_t>(i));
    put_le(t, 1, 4);
  }
  // I/O APIC: type 1, length 12, id, reserved, address, global system interrupt base.
  t.push_back(1);
  t.push_back(12);
  t.push_back(static_cast<uint8_t>(config.vcpus));
  t.push_back(0);
  put_le(t, config.ioapic_address, 4);
  put_le(t, 0, 4);
  finish(t);
  return t;
}

std::vector<uint8_t> xsdt(const std::vector<uint64_t>& entries) {
  std::vector<uint8_t> t = header("XSDT", 1);
  for (uint64_t e : entries) put_le(t, e, 8);
  finish(t);
  return t;
}

std::vector<uint8_t> rsdp(uint64_t xsdt_address) {
  std::vector<uint8_t> t{'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
  t.push_back(0);  // checksum of the first 20 bytes
  t.insert(t.end(), kOemId, kOemId + 6);
  t.push_back(2);     // revision: ACPI 2.0+
  put_le(t, 0, 4);    // RSDT address: none, XSDT only
  put_le(t, 36, 4);   // length
  put_le(t, xsdt_address, 8);
  t.push_back(0);     // extended checksum
  t.insert(t.end(), 3, 0);
  t[8] = static_cast<uint8_t>(-acpi_sum(t, 0, 20));
  t[32] = static_cast<uint8_t>(-acpi_sum(t));
  return t;
}

uint64_t align16(uint64_t v) { return (v + 15) & ~uint64_t{15}; }

}  // namespace

uint8_t acpi_sum(const std::vector<uint8_t>& bytes, size_t begin, size_t end) {
  uint8_t sum = 0;
  for (size_t i = begin; i < bytes.size() && i < end; i++) sum = static_cast<uint8_t>(sum + bytes[i]);
  return sum;
}

AcpiTables build_acpi_tables(const AcpiConfig& config, uint64_t base) {
  AcpiTables out;
  const uint64_t rsdp_at = align16(base);
  const uint64_t xsdt_at = rsdp_at + 48;  // RSDP is 36 bytes
  // XSDT size is known: header + 2 entries.
  const uint64_t fadt_at = align16(xsdt_at + 36 + 2 * 8);
  const uint64_t madt_at = align16(fadt_at + 276);
  std::vector<uint8_t> madt_bytes = madt(config);
  const uint64_t dsdt_at = align16(madt_at + madt_bytes.size());
  out.rsdp_address = rsdp_at;
  out.tables.push_back({rsdp_at, rsdp(xsdt_at)});
  out.tables.push_back({xsdt_at, xsdt({fadt_at, madt_at})});
  out.tables.push_back({fadt_at, fadt(dsdt_at)});
  out.tables.push_back({madt_at, std::move(madt_bytes)});
  out.tables.push_back({dsdt_at, dsdt(config)});
  return out;
}

Status write_acpi_tables(GuestMemory& mem, const AcpiTables& tables) {
  for (const auto& t : tables.tables) NV_TRY(mem.write(t.address, t.bytes));
  return {};
}

}  // namespace nodevisor::vmm::acpi
