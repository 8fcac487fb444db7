#include "vmm/device_manager/device_manager.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "sys/tap.h"

namespace nodevisor::vmm::virtio {

namespace {

void raise(int fd) {
  const uint64_t one = 1;
  // EAGAIN: the counter is saturated, an interrupt is pending anyway.
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<std::unique_ptr<DeviceManager>> DeviceManager::create(VmWiring& wiring, GuestMemory& mem, Bus& mmio_bus,
                                                     const DeviceManagerConfig& config) {
  const uint64_t count = (config.agent_console ? 1 : 0) + config.disks.size() + config.hotplug_slots +
                         config.netdevs.size() + config.hotplug_net_slots;
  if (count > kMaxDevices) {
    return plain_error("EINVAL", "a VM has room for " + std::to_string(kMaxDevices) +
                                     " virtio devices (the agent console, disks and hot-plug slots); " +
                                     std::to_string(count) + " were asked for");
  }
  std::unique_ptr<DeviceManager> set(new DeviceManager(wiring, mem, mmio_bus, config.on_interrupt));
  if (config.agent_console) {
    auto console = ConsoleDevice::create("agent", config.console_notifications);
    if (!console) return console.error();
    set->console_ = console.value();
    NV_TRY(set->place(set->console_, {set->console_->queue_eventfd(0), set->console_->queue_eventfd(1)}));
  }
  for (size_t i = 0; i < config.disks.size() + config.hotplug_slots; i++) {
    const bool hotplug = i >= config.disks.size();
    std::optional<BlockBackend> backend;
    std::string serial;
    bool read_only = false;
    if (!hotplug) {
      const DiskConfig& d = config.disks[i];
      auto opened = BlockBackend::open(d.path, d.read_only);
      if (!opened) return opened.error();
      backend = std::move(opened).value();
      serial = d.serial;
      read_only = d.read_only;
    }
    auto dev = BlockDevice::create("vd" + std::string(1, static_cast<char>('a' + i % 26)), read_only,
                                   std::move(backend), serial);
    if (!dev) return dev.error();
    NV_TRY(set->place(dev.value(), {dev.value()->queue_eventfd()}));
    set->disks_.push_back({dev.value(), set->placed_.back().transport.get(), hotplug});
  }
  NV_TRY(set->add_nets(config));
  return set;
}

namespace {
// The tap an endpoint names, ready for the net device (any thread; may start one of its own).
Result<UniqueFd> open_endpoint(const NetdevConfig& net) {
  if (net.tap_fd >= 0) {
    UniqueFd fd(::fcntl(net.tap_fd, F_DUPFD_CLOEXEC, 3));
    if (!fd) return sys_error(errno, "fcntl(F_DUPFD_CLOEXEC)", "cannot take the tap fd");
    auto ok = sys::adopt_tap_fd(fd.get());
    if (!ok) return sys_error(ok.error().errnum, ok.error().syscall, ok.error().message);
    return fd;
  }
  auto fd = sys::open_tap(net.tap_name, net.netns);
  if (!fd) {
    Error e = sys_error(fd.error().errnum, fd.error().syscall, fd.error().message);
    if (!net.netns.empty()) e.path = net.netns;
    return e;
  }
  return std::move(fd).value();
}
}  // namespace

Status DeviceManager::add_nets(const DeviceManagerConfig& config) {
  for (size_t i = 0; i < config.netdevs.size() + config.hotplug_net_slots; i++) {
    const bool hotplug = i >= config.netdevs.size();
    UniqueFd tap;
    MacAddress mac{};
    if (!hotplug) {
      auto opened = open_endpoint(config.netdevs[i]);
      if (!opened) return opened.error();
      tap = std::move(opened).value();
      mac = config.netdevs[i].mac;
    }
    auto dev = NetDevice::create("eth" + std::to_string(i), mac, std::move(tap));
    if (!dev) return dev.error();
    NV_TRY(place(dev.value(), {dev.value()->queue_eventfd(0), dev.value()->queue_eventfd(1)}));
    nets_.push_back({dev.value(), placed_.back().transport.get(), hotplug});
  }
  return {};
}

Result<uint32_t> DeviceManager::attach_net(const NetdevConfig& net) {
  std::lock_guard guard(hotplug_mutex_);
  std::optional<uint32_t> free;
  for (uint32_t i = 0; i < nets_.size(); i++) {
    if (nets_[i].hotplug && !nets_[i].device->has_tap()) {
      free = i;
      break;
    }
  }
  if (!free) return plain_error("ENOSPC", "no free net slot (Vm.create({ hotplugNetSlots }) sets how many)");
  auto tap = open_endpoint(net);
  if (!tap) return tap.error();
  NV_TRY(nets_[*free].device->attach(std::move(tap).value(), net.mac, *nets_[*free].transport));
  return *free;
}

Status DeviceManager::detach_net(uint32_t slot) {
  std::lock_guard guard(hotplug_mutex_);
  if (slot >= nets_.size()) {
    return plain_error("EINVAL", "no net slot " + std::to_string(slot) + " (the VM has " +
                                     std::to_string(nets_.size()) + ")");
  }
  if (!nets_[slot].hotplug) {
    return plain_error("EINVAL", "net slot " + std::to_string(slot) + " holds an endpoint given at boot; only hot-plug slots can be emptied");
  }
  return nets_[slot].device->detach(*nets_[slot].transport);
}

Status DeviceManager::place(std::shared_ptr<VirtioDevice> device, const std::vector<int>& queue_eventfds) {
  const uint32_t n = static_cast<uint32_t>(placed_.size());
  Placed p;
  p.base = kMmioBase + mmio::kWindowSize * n;
  p.irq = kFirstIrq + n;
  auto irqfd = wiring_.connect_irqfd(p.irq);
  if (!irqfd) return irqfd.error();
  p.irqfd = std::move(irqfd).value();
  const int fd = p.irqfd.get();
  p.transport = std::make_shared<MmioTransport>(device, mem_, [fd, hook = on_interrupt_] {
    raise(fd);
    if (hook) hook();
  });
  p.device = std::move(device);
  NV_TRY(bus_.insert(p.base, mmio::kWindowSize, p.transport));
  for (uint32_t q = 0; q < queue_eventfds.size(); q++) {
    // Optional: without it a QueueNotify write exits to the VMM, which rings the same doorbell.
    (void)wiring_.connect_ioeventfd(p.base + mmio::kQueueNotify, q, queue_eventfds[q]);
  }
  placed_.push_back(std::move(p));
  return {};
}

DeviceManager::~DeviceManager() { shut_down(); }

void DeviceManager::request_stop() {
  for (auto& p : placed_) p.device->request_stop();
}

void DeviceManager::shut_down() {
  // First ask work in progress to give up (a long disk request ends at its next chunk), so
  // waiting for each device's work lock below is short; let the console take what the guest
  // had queued for the host; then reset every device under its locks. After this no worker
  // touches guest memory; the devices go (and their workers are joined) with their last
  // reference.
  request_stop();
  if (console_) console_->drain_final();
  for (auto& p : placed_) p.device->stop_and_reset();
}

void DeviceManager::set_paused(bool paused, bool wake) {
  for (auto& p : placed_) {
    // Pausing: work in flight gives up at its next step and is put back (it runs again after
    // the resume), so waiting for the work lock is short.
    if (paused) p.device->cancel_work(true);
    std::lock_guard work(p.device->work_lock());
    std::lock_guard guard(p.device->lock());
    if (!paused) p.device->cancel_work(false);
    p.device->set_paused(paused, wake);
  }
}

void DeviceManager::wake_all() {
  for (auto& p : placed_) p.device->wake_all();  // eventfd writes: no lock needed
}

void DeviceManager::prefault_queues() {
  for (auto& p : placed_) {
    std::lock_guard guard(p.device->lock());
    for (const Queue& q : p.device->queues()) {
      if (!q.ready || q.size == 0) continue;
      // virtio 1.x split ring sizes: 16-byte descriptors; flags, idx, ring[], used_event /
      // avail_event (2-byte entries available, 8-byte entries used).
      mem_.prefault(q.desc_table, 16ull * q.size);
      mem_.prefault(q.avail_ring, 6ull + 2ull * q.size);
      mem_.prefault(q.used_ring, 6ull + 8ull * q.size);
    }
  }
}

std::string DeviceManager::cmdline_entries() const {
  std::string out;
  for (const auto& p : placed_) {
    char entry[64];
    std::snprintf(entry, sizeof entry, "virtio_mmio.device=4K@0x%llx:%u", static_cast<unsigned long long>(p.base),
                  p.irq);
    if (!out.empty()) out += ' ';
    out += entry;
  }
  return out;
}

std::vector<acpi::VirtioMmioDeviceInfo> DeviceManager::acpi_devices() const {
  std::vector<acpi::VirtioMmioDeviceInfo> out;
  for (const auto& p : placed_) out.push_back({p.base, mmio::kWindowSize, p.irq});
  return out;
}

std::vector<std::shared_ptr<BusDevice>> DeviceManager::bus_devices() const {
  std::vector<std::shared_ptr<BusDevice>> out;
  for (const auto& p : placed_) out.push_back(p.transport);
  return out;
}

Result<uint32_t> DeviceManager::attach_disk(const DiskConfig& disk) {
  NV_TRY(check_serial(disk.serial));
  std::lock_guard guard(hotplug_mutex_);
  std::optional<uint32_t> free;
  for (uint32_t i = 0; i < disks_.size(); i++) {
    if (disks_[i].hotplug && !disks_[i].device->has_disk()) {
      free = i;
      break;
    }
  }
  if (!free) return plain_error("ENOSPC", "no free hot-plug slot (Vm.create({ hotplugSlots }) sets how many)");
  auto backend = BlockBackend::open(disk.path, disk.read_only);
  if (!backend) return backend.error();
  if (!disk.read_only) {
    // The same disk writable in two slots: two guest filesystems over one device corrupt it.
    for (const auto& d : disks_) {
      auto id = d.device->disk_identity();
      if (id && id->first == backend.value().dev() && id->second == backend.value().ino()) {
        Error e = plain_error("EBUSY", "disk " + disk.path + " is already attached to this VM");
        e.path = disk.path;
        return e;
      }
    }
  }
  NV_TRY(disks_[*free].device->attach(std::move(backend).value(), disk.serial, *disks_[*free].transport));
  return *free;
}

std::vector<std::pair<uint32_t, DiskConfig>> DeviceManager::hotplugged_disks() {
  std::lock_guard guard(hotplug_mutex_);
  std::vector<std::pair<uint32_t, DiskConfig>> out;
  for (uint32_t i = 0; i < disks_.size(); i++) {
    if (!disks_[i].hotplug) continue;
    auto info = disks_[i].device->disk_info();
    if (info) out.push_back({i, DiskConfig{info->path, info->read_only, info->serial}});
  }
  return out;
}

std::vector<uint32_t> DeviceManager::nets_with_tap() {
  std::lock_guard guard(hotplug_mutex_);
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < nets_.size(); i++) {
    if (nets_[i].device->has_tap()) out.push_back(i);
  }
  return out;
}

namespace {
// A restored disk is announced by the restored transport state, not by a new interrupt.
class SilentInterrupts final : public InterruptSink {
 public:
  void used_buffer() override {}
  void config_changed() override {}
  void needs_reset() override {}
};
}  // namespace

Status DeviceManager::restore_disk(uint32_t slot, const DiskConfig& disk) {
  std::lock_guard guard(hotplug_mutex_);
  if (slot >= disks_.size() || !disks_[slot].hotplug) {
    return plain_error("EINVAL", "no hot-plug slot " + std::to_string(slot) + " to restore a disk into");
  }
  auto backend = BlockBackend::open(disk.path, disk.read_only);
  if (!backend) return backend.error();
  SilentInterrupts silent;
  return disks_[slot].device->attach(std::move(backend).value(), disk.serial, silent);
}

Status DeviceManager::detach_disk(uint32_t slot) {
  std::lock_guard guard(hotplug_mutex_);
  if (slot >= disks_.size()) {
    return plain_error("EINVAL", "no disk slot " + std::to_string(slot) + " (the VM has " +
                                     std::to_string(disks_.size()) + ")");
  }
  if (!disks_[slot].hotplug) {
    // attach_disk fills hot-plug slots only: a boot disk taken out could never come back.
    return plain_error("EINVAL", "slot " + std::to_string(slot) + " holds a disk given at boot; only hot-plug slots can be emptied");
  }
  return disks_[slot].device->detach(*disks_[slot].transport);
}

}  // namespace nodevisor::vmm::virtio
