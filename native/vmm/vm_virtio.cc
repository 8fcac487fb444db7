// The virtio side of a Vm (DESIGN §3): the agent console, boot disks, hot-plug slots and the
// ACPI tables that describe them. Kept apart from vm.cc, which owns booting and vCPUs.
//
// Threads: add_virtio_devices on the VM-building thread; attach/detach on a libuv worker;
// write_agent/read_agent on the JS thread; shut_down_virtio on the stopping thread, after
// the vCPUs are joined and before guest memory is freed.
#include "vmm/acpi/acpi_tables.h"
#include "vmm/devices/legacy/wait_port.h"
#include "vmm/vm.h"

namespace nodevisor::vmm {

namespace {
// Where the ACPI tables go: the legacy BIOS area, where a kernel that is given no RSDP
// address scans for one (0xE0000–0xFFFFF); below 1 MiB, so never under a kernel image.
constexpr uint64_t kAcpiTablesAddress = 0xe0000;
}  // namespace

Result<std::string> Vm::add_virtio_devices() {
  virtio::DeviceManagerConfig config;
  config.agent_console = config_.agent_console;
  config.disks = config_.disks;
  config.hotplug_slots = config_.hotplug_slots;
  config.netdevs = config_.netdevs;
  config.hotplug_net_slots = config_.hotplug_net_slots;
  config.console_notifications.output_ready = [this] { sink().on_agent_readable(); };
  config.console_notifications.input_space = [this] { sink().on_agent_writable(); };
  // wait_port_ is created by add_legacy_devices, which may run later: look it up per call.
  config.on_interrupt = [this] {
    if (wait_port_ && config_.wait_words.virtio_work != 0) wait_port_->post_coalesced(config_.wait_words.virtio_work);
  };
  auto set = virtio::DeviceManager::create(kvm_vm_, *memory_, mmio_bus_, config);
  if (!set.ok()) return set.error();

  acpi::AcpiConfig acpi_config;
  acpi_config.vcpus = config_.vcpus;
  acpi_config.virtio_devices = set.value()->acpi_devices();
  // A restored VM's memory already holds the tables (writing them again would only copy pages).
  if (!restoring_) {
    NV_TRY(acpi::write_acpi_tables(*memory_, acpi::build_acpi_tables(acpi_config, kAcpiTablesAddress)));
  }

  for (auto& transport : set.value()->bus_devices()) devices_.push_back(transport);
  std::string entries = config_.virtio_cmdline ? set.value()->cmdline_entries() : "";
  std::lock_guard lock(virtio_mutex_);
  virtio_ = std::move(set.value());
  return entries;
}

void Vm::shut_down_virtio() {
  std::shared_ptr<virtio::DeviceManager> set;
  {
    std::lock_guard lock(virtio_mutex_);
    set = std::move(virtio_);
  }
  if (!set) return;
  set->shut_down();
  if (set->console() != nullptr) {
    // What the guest wrote and the host has not read yet stays readable after the stop.
    std::vector<uint8_t> rest = set->console()->read_output(SIZE_MAX);
    std::lock_guard lock(virtio_mutex_);
    agent_leftover_.insert(agent_leftover_.end(), rest.begin(), rest.end());
  }
  // Drop every reference to the transports so the devices (and their worker threads and
  // eventfds) go now, not when the JS handle is collected.
  std::erase_if(devices_, [&](const std::shared_ptr<BusDevice>& d) {
    for (const auto& t : set->bus_devices()) {
      if (t == d) return true;
    }
    return false;
  });
  mmio_bus_ = Bus("MMIO");
}

std::shared_ptr<virtio::DeviceManager> Vm::virtio_devices() const {
  std::lock_guard lock(virtio_mutex_);
  return virtio_;
}

Result<uint32_t> Vm::attach_disk(const virtio::DiskConfig& disk) {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set) return plain_error("EBUSY", "the VM is stopped");
  return set->attach_disk(disk);
}

Status Vm::detach_disk(uint32_t slot) {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set) return plain_error("EBUSY", "the VM is stopped");
  return set->detach_disk(slot);
}

Result<uint32_t> Vm::attach_net(const virtio::NetdevConfig& net) {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set) return plain_error("EBUSY", "the VM is stopped");
  return set->attach_net(net);
}

Status Vm::detach_net(uint32_t slot) {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set) return plain_error("EBUSY", "the VM is stopped");
  return set->detach_net(slot);
}

size_t Vm::write_agent(std::span<const uint8_t> bytes) {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set || set->console() == nullptr) return 0;
  const size_t taken = set->console()->write_input(bytes);
  // A probe guest brings its virtio drivers up on the first such word (a Linux guest never
  // reads the port; the word is coalesced, so it costs nothing there).
  if (taken > 0 && wait_port_ && config_.wait_words.virtio_work != 0) {
    wait_port_->post_coalesced(config_.wait_words.virtio_work);
  }
  return taken;
}

std::vector<uint8_t> Vm::read_agent(size_t max) {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set) {
    // Stopped: serve what was left when the devices went away.
    std::lock_guard lock(virtio_mutex_);
    const size_t n = std::min(max, agent_leftover_.size());
    std::vector<uint8_t> out(agent_leftover_.begin(), agent_leftover_.begin() + static_cast<std::ptrdiff_t>(n));
    agent_leftover_.erase(agent_leftover_.begin(), agent_leftover_.begin() + static_cast<std::ptrdiff_t>(n));
    return out;
  }
  if (set->console() == nullptr) return {};
  return set->console()->read_output(max);
}

void Vm::pause_virtio(bool paused) {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (set) set->set_paused(paused);
}

void Vm::release_virtio() {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set) return;
  set->set_paused(false, /*wake=*/false);
  devices_need_wake_.store(true);  // vCPU 0 wakes them as it leaves its pause (vcpu_resumed)
}

}  // namespace nodevisor::vmm
