// The device manager (native/vmm/device_manager): the virtio-mmio devices of one VM — the agent
// console, disks given at boot, and empty hot-plug slots. It places each device in the MMIO
// window (kMmioBase + n * 4 KiB) with its own interrupt line (GSI kFirstIrq + n), wires
// interrupts through irqfds and queue notifications through ioeventfds, both asked of the VM
// through VmWiring (so neither costs a userspace exit when KVM supports them), and describes the
// devices to the guest both ways DESIGN §3 names: `virtio_mmio.device=` command-line entries and
// ACPI (see vmm/acpi).
//
// Threads: built on the VM-building thread (a libuv worker). attach/detach run on a libuv worker
// (opening a disk may wait on the device); console I/O on the JS thread; the devices' own work
// on their worker threads. `shut_down` (the VM's stopping thread) joins every worker before
// guest memory goes away.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/acpi/acpi_tables.h"
#include "vmm/bus/bus.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/console/console_device.h"
#include "vmm/devices/virtio/mmio_transport.h"
#include "vmm/devices/virtio/net/net_device.h"
#include "vmm/kvm/vm_wiring.h"
#include "vmm/memory/guest_memory.h"
#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm::virtio {

struct DiskConfig {
  std::string path;
  bool read_only = false;
  std::string serial;
};

// A network endpoint: a tap the VM's virtio-net device reads and writes. Either `tap_fd` (the
// caller's open tap, borrowed: the set keeps a dup) or `tap_name` opened (created if missing)
// inside the network namespace at `netns` (sys/tap.h; empty: the VMM's own namespace).
struct NetdevConfig {
  int tap_fd = -1;
  std::string tap_name;
  std::string netns;
  MacAddress mac{};
};

struct DeviceManagerConfig {
  bool agent_console = true;
  std::vector<DiskConfig> disks;  // attached at boot
  uint32_t hotplug_slots = 0;     // empty slots after the boot disks
  std::vector<NetdevConfig> netdevs;  // network endpoints at boot, placed after the disks
  uint32_t hotplug_net_slots = 0;     // empty virtio-net slots after them
  ConsoleNotifications console_notifications;
  // Called with every interrupt a device raises (any thread; must only signal): the probe
  // guest takes no interrupts and polls, so the VM also wakes it on its wait port.
  std::function<void()> on_interrupt;
};

// Where the devices live. Inside the 32-bit MMIO hole, below the TSS/identity map pages.
inline constexpr uint64_t kMmioBase = 0xd000'0000;
// IOAPIC pins: 0-4 are the PIT, keyboard, cascade and COM ports; 5-23 are ours.
inline constexpr uint32_t kFirstIrq = 5;
inline constexpr uint32_t kLastIrq = 23;
inline constexpr uint32_t kMaxDevices = kLastIrq - kFirstIrq + 1;

class DeviceManager {
 public:
  // `wiring` (the KVM VM) connects interrupts and doorbells. Devices are registered on `mmio_bus`.
  static Result<std::unique_ptr<DeviceManager>> create(VmWiring& wiring, GuestMemory& mem, Bus& mmio_bus,
                                                   const DeviceManagerConfig& config);
  ~DeviceManager();

  // `virtio_mmio.device=4K@0xd0000000:5 ...` for every device, for the kernel command line.
  std::string cmdline_entries() const;
  // The devices as ACPI sees them (memory window and interrupt each).
  std::vector<acpi::VirtioMmioDeviceInfo> acpi_devices() const;
  // Every transport, for save/restore with the VM's other devices.
  std::vector<std::shared_ptr<BusDevice>> bus_devices() const;

  // Hot-plug. `attach_disk` opens `disk.path` and puts it in the first empty hot-plug slot,
  // returning the slot number (an index over all disks, boot disks first).
  Result<uint32_t> attach_disk(const DiskConfig& disk);
  Status detach_disk(uint32_t slot);
  uint32_t disk_count() const { return static_cast<uint32_t>(disks_.size()); }

  // Snapshots (Vm::snapshot / Vm::restore, the VM paused). The disks the hot-plug slots hold,
  // by slot; and putting a disk back into a given hot-plug slot of a restored VM without an
  // interrupt (its driver already knows the disk; the transport state comes next).
  std::vector<std::pair<uint32_t, DiskConfig>> hotplugged_disks();
  // The net slots that hold a tap (host state a snapshot cannot record).
  std::vector<uint32_t> nets_with_tap();
  Status restore_disk(uint32_t slot, const DiskConfig& disk);

  // Network hot-plug: opens the endpoint's tap and puts it in the first empty net slot,
  // returning the slot number (an index over all net devices, boot ones first); empties a slot.
  Result<uint32_t> attach_net(const NetdevConfig& net);
  Status detach_net(uint32_t slot);
  uint32_t net_count() const { return static_cast<uint32_t>(nets_.size()); }

  ConsoleDevice* console() { return console_.get(); }

  // Tells every device's work in progress to give up at its next step, for good (the VM is
  // stopping). Never blocks: the first thing stop() does, before it joins the vCPUs.
  void request_stop();
  // Stops every device's work and resets the devices. After this, no device touches guest
  // memory. Waits at most one step of each worker.
  void shut_down();
  // Pauses (or resumes) every device's work on its queues; used while the VM is paused.
  // Resuming wakes each device's worker unless `wake` is false (then call wake_all).
  void set_paused(bool paused, bool wake = true);
  // Wakes every device's worker for every queue and for host work.
  void wake_all();
  // GuestMemory::prefault of every ready queue's rings (descriptor table, available and used
  // rings): the pages a device worker reads and writes first when the VM runs. For a VM
  // restored ahead of time, before it runs (the addresses are the guest's, checked there).
  void prefault_queues();

 private:
  struct Placed {
    std::shared_ptr<VirtioDevice> device;
    std::shared_ptr<MmioTransport> transport;
    uint64_t base;
    uint32_t irq;
    UniqueFd irqfd;
  };
  DeviceManager(VmWiring& wiring, GuestMemory& mem, Bus& bus, std::function<void()> on_interrupt)
      : wiring_(wiring), mem_(mem), bus_(bus), on_interrupt_(std::move(on_interrupt)) {}
  Status place(std::shared_ptr<VirtioDevice> device, const std::vector<int>& queue_eventfds);
  Status add_nets(const DeviceManagerConfig& config);

  VmWiring& wiring_;
  GuestMemory& mem_;
  Bus& bus_;
  std::function<void()> on_interrupt_;
  std::vector<Placed> placed_;
  std::shared_ptr<ConsoleDevice> console_;
  struct Disk {
    std::shared_ptr<BlockDevice> device;
    MmioTransport* transport;
    bool hotplug;
  };
  std::vector<Disk> disks_;
  struct Net {
    std::shared_ptr<NetDevice> device;
    MmioTransport* transport;
    bool hotplug;
  };
  std::vector<Net> nets_;
  std::mutex hotplug_mutex_;  // serialises attach/detach (the duplicate check spans slots)
};

}  // namespace nodevisor::vmm::virtio
