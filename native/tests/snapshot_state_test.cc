// The snapshot state file (vmm/snapshot): a VM state survives encode → seal → open → decode;
// every kind of damage is refused with EBADSNAPSHOT naming the file; the host CPU check.
#include <cstring>

#include "tests/framework.h"
#include "vmm/snapshot/state_file.h"
#include "vmm/snapshot/vm_snapshot.h"

namespace nodevisor::tests {

namespace {

using vmm::snapshot::VmSnapshot;

VmSnapshot sample() {
  VmSnapshot s;
  s.config.kernel_path = "/k/probe.elf";
  s.config.cmdline = "console=ttyS0";
  s.config.memory_mib = 64;
  s.config.vcpus = 2;
  s.config.hotplug_slots = 2;
  s.config.hotplug_net_slots = 3;
  s.config.disks.push_back({"/images/boot.img", true, "boot"});
  s.xsave_size = 4096;
  kvm_cpuid_entry2 vendor{};
  vendor.function = 0;
  vendor.ebx = 0x756e6547;  // "Genu"
  kvm_cpuid_entry2 features{};
  features.function = 1;
  features.ecx = 0x80202001;
  s.cpuid = {vendor, features};
  s.vcpus = {std::vector<uint8_t>(100, 1), std::vector<uint8_t>(80, 2)};
  s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
  s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
  s.clock.clock = 123456789;
  s.devices = {{1, 2, 3}, {}, {4}};
  s.disks.push_back({2, "/images/ctr.img", "ctr-1", false});
  s.generation = 0x1122334455667788ull;
  return s;
}

std::string error_of(const Result<std::span<const uint8_t>>& r) { return r.ok() ? "" : r.error().message; }

}  // namespace

TEST(snapshot_state_round_trips) {
  const VmSnapshot s = sample();
  const std::vector<uint8_t> file = vmm::snapshot::seal_state_file(vmm::snapshot::encode_vm_snapshot(s));
  auto payload = vmm::snapshot::open_state_file(file, "/d/state");
  REQUIRE(payload.ok());
  auto back = vmm::snapshot::decode_vm_snapshot(payload.value(), "/d/state");
  REQUIRE(back.ok());
  const VmSnapshot& b = back.value();
  CHECK(b.config.kernel_path == s.config.kernel_path);
  CHECK(b.config.cmdline == s.config.cmdline);
  CHECK_EQ(b.config.memory_mib, s.config.memory_mib);
  CHECK_EQ(b.config.vcpus, s.config.vcpus);
  CHECK_EQ(b.config.hotplug_net_slots, 3u);
  REQUIRE(b.config.disks.size() == 1);
  CHECK(b.config.disks[0].read_only);
  CHECK(b.config.disks[0].serial == "boot");
  CHECK(b.vcpus == s.vcpus);
  CHECK(b.devices == s.devices);
  REQUIRE(b.disks.size() == 1);
  CHECK_EQ(b.disks[0].slot, 2u);
  CHECK(b.disks[0].path == "/images/ctr.img");
  CHECK_EQ(b.clock.clock, s.clock.clock);
  CHECK_EQ(b.generation, s.generation);
}

TEST(snapshot_state_damage_is_refused_with_the_file_named) {
  const std::vector<uint8_t> good = vmm::snapshot::seal_state_file(vmm::snapshot::encode_vm_snapshot(sample()));
  auto flipped = good;
  flipped[flipped.size() / 2] ^= 1;
  auto r = vmm::snapshot::open_state_file(flipped, "/d/state");
  CHECK(!r.ok() && r.error().code == "EBADSNAPSHOT" && r.error().path == "/d/state");
  CHECK(error_of(r).find("/d/state: ") == 0);
  CHECK(error_of(r).find("checksum mismatch") != std::string::npos);

  auto shorter = std::vector<uint8_t>(good.begin(), good.end() - 1);
  CHECK(error_of(vmm::snapshot::open_state_file(shorter, "/d/state")).find("truncated") != std::string::npos);
  auto header_only = std::vector<uint8_t>(good.begin(), good.begin() + 10);
  CHECK(error_of(vmm::snapshot::open_state_file(header_only, "/d/state")).find("truncated") != std::string::npos);
  auto longer = good;
  longer.push_back(0);
  CHECK(error_of(vmm::snapshot::open_state_file(longer, "/d/state")).find("unexpected bytes") != std::string::npos);
  auto other_version = good;
  other_version[8] = 2;
  CHECK(error_of(vmm::snapshot::open_state_file(other_version, "/d/state")).find("version 2") != std::string::npos);
  auto not_magic = good;
  not_magic[0] = 'X';
  CHECK(error_of(vmm::snapshot::open_state_file(not_magic, "/d/state")).find("bad magic") != std::string::npos);
}

TEST(snapshot_state_values_out_of_range_are_refused) {
  VmSnapshot s = sample();
  s.config.vcpus = 3;  // but two vCPU blobs
  auto bytes = vmm::snapshot::encode_vm_snapshot(s);
  CHECK(!vmm::snapshot::decode_vm_snapshot(bytes, "/d/state").ok());
  s = sample();
  s.disks[0].slot = 0;  // a boot disk's slot is not a hot-plug slot
  CHECK(!vmm::snapshot::decode_vm_snapshot(vmm::snapshot::encode_vm_snapshot(s), "/d/state").ok());
  s = sample();
  s.disks[0].path = std::string("a\0b", 3);
  CHECK(!vmm::snapshot::decode_vm_snapshot(vmm::snapshot::encode_vm_snapshot(s), "/d/state").ok());
  s = sample();
  s.config.hotplug_net_slots = 17;  // with the console, a boot disk and 2 disk slots: 21 > 19
  CHECK(!vmm::snapshot::decode_vm_snapshot(vmm::snapshot::encode_vm_snapshot(s), "/d/state").ok());
  s = sample();
  auto v1 = vmm::snapshot::encode_vm_snapshot(s);
  v1[4] = 1;  // the payload version, after its tag: before net slots were recorded
  auto old = vmm::snapshot::decode_vm_snapshot(v1, "/d/state");
  CHECK(!old.ok() && old.error().message.find("from an older nodevisor") != std::string::npos);
  s = sample();
  s.ioapic.chip_id = KVM_IRQCHIP_PIC_MASTER;
  CHECK(!vmm::snapshot::decode_vm_snapshot(vmm::snapshot::encode_vm_snapshot(s), "/d/state").ok());
}

TEST(snapshot_host_cpu_check) {
  const VmSnapshot s = sample();
  std::vector<kvm_cpuid_entry2> host = s.cpuid;
  CHECK(vmm::snapshot::check_host_cpu(s, 4096, host, "/d/state").ok());
  host[1].ecx |= 0x10;  // the host has more: fine
  CHECK(vmm::snapshot::check_host_cpu(s, 4096, host, "/d/state").ok());
  host[1].ecx &= ~0x2000u;  // the host lacks a bit the guest was shown
  auto missing = vmm::snapshot::check_host_cpu(s, 4096, host, "/d/state");
  CHECK(!missing.ok() && missing.error().message.find("leaf 0x1.0 ECX bits 0x2000") != std::string::npos);
  auto xsave = vmm::snapshot::check_host_cpu(s, 8192, s.cpuid, "/d/state");
  CHECK(!xsave.ok() && xsave.error().message.find("XSAVE") != std::string::npos);
  std::vector<kvm_cpuid_entry2> amd = s.cpuid;
  amd[0].ebx = 0x68747541;  // "Auth"
  CHECK(!vmm::snapshot::check_host_cpu(s, 4096, amd, "/d/state").ok());
}

}  // namespace nodevisor::tests
