// ACPI tables: structure, checksums, and — where acpica-tools is installed — a clean
// disassembly by `iasl -d`, the reference implementation's own parser.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/framework.h"
#include "vmm/acpi/acpi_tables.h"
#include "vmm/acpi/aml.h"

namespace nodevisor::tests {

using namespace nodevisor::vmm::acpi;

namespace {

AcpiConfig two_devices() {
  AcpiConfig c;
  c.vcpus = 2;
  c.virtio_devices = {{0xd000'0000, 0x1000, 5}, {0xd000'1000, 0x1000, 6}};
  return c;
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace

TEST(acpi_tables_have_valid_checksums_and_links) {
  AcpiTables t = build_acpi_tables(two_devices(), 0xe0000);
  REQUIRE(t.tables.size() == 5);
  CHECK_EQ(t.rsdp_address, 0xe0000u);
  const auto& rsdp = t.tables[0].bytes;
  CHECK(std::memcmp(rsdp.data(), "RSD PTR ", 8) == 0);
  CHECK_EQ(acpi_sum(rsdp, 0, 20), 0);
  CHECK_EQ(acpi_sum(rsdp), 0);
  uint64_t xsdt_addr;
  std::memcpy(&xsdt_addr, rsdp.data() + 24, 8);
  CHECK_EQ(xsdt_addr, t.tables[1].address);
  const char* sigs[] = {"XSDT", "FACP", "APIC", "DSDT"};
  for (size_t i = 1; i < t.tables.size(); i++) {
    const auto& b = t.tables[i].bytes;
    CHECK(std::memcmp(b.data(), sigs[i - 1], 4) == 0);
    uint32_t len;
    std::memcpy(&len, b.data() + 4, 4);
    CHECK_EQ(len, b.size());
    CHECK_EQ(acpi_sum(b), 0);
    CHECK_EQ(t.tables[i].address % 8, 0u);
  }
  uint64_t dsdt_addr;
  std::memcpy(&dsdt_addr, t.tables[2].bytes.data() + 140, 8);
  CHECK_EQ(dsdt_addr, t.tables[4].address);
  uint32_t flags;
  std::memcpy(&flags, t.tables[2].bytes.data() + 112, 4);
  CHECK(flags & (1u << 20));  // hardware-reduced
  // MADT: 2 local APICs + 1 IO APIC after the 44-byte fixed part.
  CHECK_EQ(t.tables[3].bytes.size(), 44u + 2 * 8 + 12);
  // DSDT names the devices.
  const auto& dsdt = t.tables[4].bytes;
  CHECK(std::search(dsdt.begin(), dsdt.end(), "LNRO0005", "LNRO0005" + 8) != dsdt.end());
}

TEST(aml_pkg_length_encodings) {
  CHECK(Aml::pkg_length(0) == std::vector<uint8_t>{1});
  CHECK(Aml::pkg_length(62) == std::vector<uint8_t>{63});
  // 63 + 2 = 65 bytes: two-byte form, low nibble 1, then 65 >> 4 = 4.
  CHECK(Aml::pkg_length(63) == (std::vector<uint8_t>{0x41, 0x04}));
  CHECK_EQ(Aml::pkg_length(4000).size(), 2u);  // two bytes hold up to 0xfff
  CHECK_EQ(Aml::pkg_length(4000)[0] >> 6, 1);
  CHECK_EQ(Aml::pkg_length(5000).size(), 3u);
  CHECK_EQ(Aml::pkg_length(70000).size(), 3u);
  CHECK(Aml::integer(0) == std::vector<uint8_t>{0});
  CHECK(Aml::integer(0x1234) == (std::vector<uint8_t>{0x0b, 0x34, 0x12}));
}

TEST(acpi_tables_disassemble_cleanly_with_iasl) {
  if (run("command -v iasl").empty()) SKIP("the command `iasl` is not installed (apt-get install acpica-tools)");
  char dir[] = "/tmp/nodevisor-acpi-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  AcpiConfig c = two_devices();
  for (int i = 0; i < 20; i++) c.virtio_devices.push_back({0xd000'2000ull + 0x1000ull * i, 0x1000, 7u + i});
  AcpiTables t = build_acpi_tables(c, 0xe0000);
  const char* names[] = {"rsdp", "xsdt", "facp", "apic", "dsdt"};
  for (size_t i = 0; i < t.tables.size(); i++) {
    std::ofstream f(std::string(dir) + "/" + names[i] + ".dat", std::ios::binary);
    f.write(reinterpret_cast<const char*>(t.tables[i].bytes.data()), static_cast<std::streamsize>(t.tables[i].bytes.size()));
  }
  const std::string d(dir);
  for (const char* n : {"xsdt", "facp", "apic", "dsdt"}) {
    std::string out = run("cd " + d + " && iasl -d " + n + ".dat 2>&1");
    CHECK(out.find("Error") == std::string::npos);
    CHECK(out.find("Invalid") == std::string::npos);
    std::ifstream dsl(d + "/" + n + ".dsl");
    std::stringstream text;
    text << dsl.rdbuf();
    CHECK(!text.str().empty());
    CHECK(text.str().find("Incorrect checksum") == std::string::npos);
    if (std::string(n) == "dsdt") {
      CHECK(text.str().find("\"LNRO0005\"") != std::string::npos);
      CHECK(text.str().find("0xD0015000") != std::string::npos);  // the 22nd device's window
      CHECK(text.str().find("0x0000001A") != std::string::npos);  // its interrupt, 26
    }
    if (std::string(n) == "facp") CHECK(text.str().find("Hardware Reduced (V5) : 1") != std::string::npos);
  }
  run("rm -rf " + d);
}

}  // namespace nodevisor::tests
