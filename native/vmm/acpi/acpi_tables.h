// ACPI tables for a hardware-reduced micro-VM (ACPI 6.5): RSDP → XSDT → FADT (+ DSDT) and
// MADT. The DSDT has one `LNRO0005` device per virtio-mmio device, with its memory window and
// interrupt, so a stock distribution kernel (whose virtio-mmio driver is a module and reads
// no command line) finds the devices.
//
// Runs on: the VM-building thread; the result is written into guest memory once.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/memory/guest_memory.h"
#include "sys/result.h"

namespace nodevisor::vmm::acpi {

struct VirtioMmioDeviceInfo {
  uint64_t base;
  uint64_t size;
  uint32_t irq;  // GSI (IOAPIC pin)
};

struct AcpiConfig {
  uint32_t vcpus = 1;
  std::vector<VirtioMmioDeviceInfo> virtio_devices;
  uint64_t lapic_address = 0xfee0'0000;
  uint64_t ioapic_address = 0xfec0'0000;
};

// One table placed at a guest-physical address.
struct PlacedTable {
  uint64_t address;
  std::vector<uint8_t> bytes;
};

struct AcpiTables {
  uint64_t rsdp_address;
  std::vector<PlacedTable> tables;  // RSDP first
};

// Lays the tables out from `base` (16-byte aligned; the RSDP goes there, where the legacy
// BIOS-area scan (0xE0000–0xFFFFF) finds it when base is in that range).
AcpiTables build_acpi_tables(const AcpiConfig& config, uint64_t base);

// Writes them into guest memory.
Status write_acpi_tables(GuestMemory& mem, const AcpiTables& tables);

// The 8-bit sum of `bytes` (0 for a table with a correct checksum).
uint8_t acpi_sum(const std::vector<uint8_t>& bytes, size_t begin = 0, size_t end = SIZE_MAX);

}  // namespace nodevisor::vmm::acpi
