#include "vmm/snapshot/vm_snapshot.h"

#include <cstdio>

#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/device_manager/device_manager.h"
#include "vmm/snapshot/state_file.h"
#include "vmm/util/state_codec.h"
#include "vmm/util/hex.h"

namespace nodevisor::vmm::snapshot {

namespace {

constexpr uint32_t kPayloadTag = state_tag("NVVM");
// 2: the empty net hot-plug slots are recorded (after hotplugSlots).
constexpr uint32_t kPayloadVersion = 2;
constexpr size_t kMaxCmdlineBytes = 0x10000;
constexpr size_t kMaxVcpuBlobBytes = 64 * 1024;
constexpr size_t kMaxDeviceBlobBytes = 16 * 1024 * 1024 + 4096;  // a console's two buffers

void put_string(StateWriter& w, const std::string& s) {
  w.put_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// A string of at most `max` bytes without NUL (paths, serials and command lines all are).
bool get_string(StateReader& r, std::string& out, size_t max) {
  std::vector<uint8_t> bytes;
  if (!r.get_bytes(bytes, max)) return false;
  for (uint8_t b : bytes) {
    if (b == 0) return false;
  }
  out.assign(bytes.begin(), bytes.end());
  return true;
}

}  // namespace

std::vector<uint8_t> encode_vm_snapshot(const VmSnapshot& snap) {
  StateWriter w(kPayloadTag, kPayloadVersion);
  const VmConfig& c = snap.config;
  w.put(c.memory_mib);
  w.put(c.vcpus);
  w.put(c.hotplug_slots);
  w.put(c.hotplug_net_slots);
  w.put(static_cast<uint8_t>(c.agent_console));
  w.put(static_cast<uint8_t>(c.virtio_cmdline));
  w.put(static_cast<uint8_t>(c.pvh_entry_only));
  w.put(static_cast<uint8_t>(snap.coalesce_com1));
  w.put(static_cast<uint64_t>(c.wait_port_timeout.count()));
  put_string(w, c.kernel_path);
  put_string(w, c.initrd_path);
  put_string(w, c.cmdline);
  w.put(static_cast<uint32_t>(c.disks.size()));
  for (const auto& d : c.disks) {
    put_string(w, d.path);
    put_string(w, d.serial);
    w.put(static_cast<uint8_t>(d.read_only));
  }

  w.put(snap.xsave_size);
  w.put(static_cast<uint32_t>(snap.cpuid.size()));
  for (const auto& e : snap.cpuid) w.put(e);

  w.put(static_cast<uint32_t>(snap.vcpus.size()));
  for (const auto& v : snap.vcpus) w.put_bytes(v);
  w.put(snap.pic_master);
  w.put(snap.pic_slave);
  w.put(snap.ioapic);
  w.put(snap.pit);
  w.put(snap.clock);

  w.put(static_cast<uint32_t>(snap.devices.size()));
  for (const auto& d : snap.devices) w.put_bytes(d);
  w.put(static_cast<uint32_t>(snap.disks.size()));
  for (const auto& d : snap.disks) {
    w.put(d.slot);
    put_string(w, d.path);
    put_string(w, d.serial);
    w.put(static_cast<uint8_t>(d.read_only));
  }
  w.put(snap.generation);
  return w.take();
}

Result<VmSnapshot> decode_vm_snapshot(std::span<const uint8_t> payload, const std::string& path) {
  StateReader r(payload);
  {
    uint32_t tag = 0, version = 0;
    if (!r.get(tag) || tag != kPayloadTag) return bad_snapshot(path, "state payload is not a nodevisor VM");
    if (!r.get(version)) return bad_snapshot(path, "state payload has no version");
    if (version == 1) {
      return bad_snapshot(path, "VM state version 1 is from an older nodevisor (before net slots were recorded): "
                                "take the snapshot again");
    }
    if (version != kPayloadVersion) {
      return bad_snapshot(path, "VM state version " + std::to_string(version) + " is not supported");
    }
  }
  const auto malformed = [&](const char* part) {
    return bad_snapshot(path, std::string("malformed ") + part + " in the state file");
  };
  VmSnapshot snap;
  VmConfig& c = snap.config;
  uint8_t agent_console = 0, virtio_cmdline = 0, pvh_only = 0, coalesce = 0;
  uint64_t timeout_ms = 0;
  uint32_t boot_disks = 0;
  if (!r.get(c.memory_mib) || !r.get(c.vcpus) || !r.get(c.hotplug_slots) || !r.get(c.hotplug_net_slots) ||
      !r.get(agent_console) ||
      !r.get(virtio_cmdline) || !r.get(pvh_only) || !r.get(coalesce) || !r.get(timeout_ms) ||
      !get_string(r, c.kernel_path, kMaxPathBytes) || !get_string(r, c.initrd_path, kMaxPathBytes) ||
      !get_string(r, c.cmdline, kMaxCmdlineBytes) || !r.get(boot_disks)) {
    return malformed("VM config");
  }
  if (c.memory_mib == 0 || c.memory_mib > kMaxMemoryMib || c.vcpus == 0 || c.vcpus > kMaxVcpus ||
      agent_console > 1 || virtio_cmdline > 1 || pvh_only > 1 || coalesce > 1 || timeout_ms > 3'600'000 ||
      boot_disks > virtio::kMaxDevices || c.hotplug_slots > virtio::kMaxDevices ||
      c.hotplug_net_slots > virtio::kMaxDevices ||
      uint64_t{boot_disks} + c.hotplug_slots + c.hotplug_net_slots + agent_console > virtio::kMaxDevices) {
    return malformed("VM config (a value out of range)");
  }
  c.agent_console = agent_console != 0;
  c.virtio_cmdline = virtio_cmdline != 0;
  c.pvh_entry_only = pvh_only != 0;
  snap.coalesce_com1 = coalesce != 0;
  c.wait_port_timeout = std::chrono::milliseconds(timeout_ms);
  for (uint32_t i = 0; i < boot_disks; ++i) {
    virtio::DiskConfig d;
    uint8_t ro = 0;
    if (!get_string(r, d.path, kMaxPathBytes) || d.path.empty() || !get_string(r, d.serial, virtio::kMaxSerialBytes) ||
        !r.get(ro) || ro > 1) {
      return malformed("boot disk");
    }
    d.read_only = ro != 0;
    c.disks.push_back(std::move(d));
  }

  uint32_t cpuid_count = 0;
  if (!r.get(snap.xsave_size) || !r.get(cpuid_count) || cpuid_count == 0 || cpuid_count > kMaxCpuidEntries) {
    return malformed("host CPU description");
  }
  snap.cpuid.resize(cpuid_count);
  for (auto& e : snap.cpuid) {
    if (!r.get(e)) return malformed("CPUID table");
  }

  uint32_t vcpu_count = 0;
  if (!r.get(vcpu_count) || vcpu_count != c.vcpus) return malformed("vCPU list");
  snap.vcpus.resize(vcpu_count);
  for (auto& v : snap.vcpus) {
    if (!r.get_bytes(v, kMaxVcpuBlobBytes)) return malformed("vCPU state");
  }
  if (!r.get(snap.pic_master) || !r.get(snap.pic_slave) || !r.get(snap.ioapic) || !r.get(snap.pit) ||
      !r.get(snap.clock)) {
    return malformed("irqchip, PIT or clock state");
  }
  if (snap.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER || snap.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
      snap.ioapic.chip_id != KVM_IRQCHIP_IOAPIC) {
    return malformed("irqchip state (wrong chip ids)");
  }

  uint32_t device_count = 0;
  if (!r.get(device_count) || device_count > kMaxDeviceBlobs) return malformed("device list");
  snap.devices.resize(device_count);
  for (auto& d : snap.devices) {
    if (!r.get_bytes(d, kMaxDeviceBlobBytes)) return malformed("device state");
  }
  uint32_t disk_count = 0;
  const uint32_t slots = boot_disks + c.hotplug_slots;
  if (!r.get(disk_count) || disk_count > c.hotplug_slots) return malformed("hot-plugged disk list");
  for (uint32_t i = 0; i < disk_count; ++i) {
    SnapshotDisk d;
    uint8_t ro = 0;
    if (!r.get(d.slot) || d.slot < boot_disks || d.slot >= slots || !get_string(r, d.path, kMaxPathBytes) ||
        d.path.empty() || !get_string(r, d.serial, virtio::kMaxSerialBytes) || !r.get(ro) || ro > 1) {
      return malformed("hot-plugged disk");
    }
    for (const auto& other : snap.disks) {
      if (other.slot == d.slot) return malformed("hot-plugged disk list (a slot twice)");
    }
    d.read_only = ro != 0;
    snap.disks.push_back(std::move(d));
  }
  if (!r.get(snap.generation) || !r.at_end()) return malformed("state file end");
  return snap;
}

namespace {

const kvm_cpuid_entry2* find_leaf(const std::vector<kvm_cpuid_entry2>& table, uint32_t function, uint32_t index) {
  for (const auto& e : table) {
    if (e.function == function && e.index == index) return &e;
  }
  return nullptr;
}

}  // namespace

Status check_host_cpu(const VmSnapshot& snap, uint32_t host_xsave_size, const std::vector<kvm_cpuid_entry2>& host,
                      const std::string& path) {
  if (snap.xsave_size != host_xsave_size) {
    return bad_snapshot(path, "the snapshot was taken on a host whose XSAVE area is " + std::to_string(snap.xsave_size) +
                                  " bytes; this host's is " + std::to_string(host_xsave_size) +
                                  " (a different CPU): it cannot be restored here");
  }
  const auto* saved_vendor = find_leaf(snap.cpuid, 0, 0);
  const auto* host_vendor = find_leaf(host, 0, 0);
  if (saved_vendor == nullptr || host_vendor == nullptr || saved_vendor->ebx != host_vendor->ebx ||
      saved_vendor->ecx != host_vendor->ecx || saved_vendor->edx != host_vendor->edx) {
    return bad_snapshot(path, "the snapshot was taken on a CPU of another vendor (CPUID leaf 0 differs)");
  }
  // Feature words: every bit the guest was shown must be there on this host.
  struct Word {
    uint32_t function, index;
    int reg;  // 0 eax, 1 ebx, 2 ecx, 3 edx
    const char* name;
  };
  static constexpr Word kWords[] = {
      {1, 0, 2, "ECX"},           {1, 0, 3, "EDX"},          {7, 0, 1, "EBX"},          {7, 0, 2, "ECX"},
      {7, 0, 3, "EDX"},           {0xd, 0, 0, "EAX"},        {0xd, 1, 0, "EAX"},        {0x80000001, 0, 2, "ECX"},
      {0x80000001, 0, 3, "EDX"},
  };
  for (const Word& w : kWords) {
    const auto* s = find_leaf(snap.cpuid, w.function, w.index);
    if (s == nullptr) continue;
    const auto* h = find_leaf(host, w.function, w.index);
    const uint32_t sv[] = {s->eax, s->ebx, s->ecx, s->edx};
    const uint32_t hv = h == nullptr ? 0 : (w.reg == 0 ? h->eax : w.reg == 1 ? h->ebx : w.reg == 2 ? h->ecx : h->edx);
    const uint32_t missing = sv[w.reg] & ~hv;
    if (missing != 0) {
      return bad_snapshot(path, "the snapshot was taken on a CPU with features this host lacks (CPUID leaf " +
                                    hex(w.function) + "." + std::to_string(w.index) + " " + w.name + " bits " +
                                    hex(missing) + ")");
    }
  }
  return {};
}

}  // namespace nodevisor::vmm::snapshot
