// Snapshots of a Vm (DESIGN §3 "Snapshot"): `snapshot` writes a paused VM's guest memory and
// state into a directory; `restore` builds a new VM from one. Kept apart from vm.cc, which
// owns booting and running. The format is snapshot/ (docs/snapshot-format.md).
//
// A restore has two parts. `assemble_restore` builds everything that depends only on the
// snapshot and leaves the VM started but paused, its vCPU threads parked; `finish_restore`
// loads what depends on the moment the guest goes on (the timers, the clock), binds the
// caller's event sink, hands in the agent input and resumes. `restore` does both, or only the
// second on a VM assembled ahead of time (restore_spares.h).
//
// Threads: `snapshot` and `restore` run on a libuv worker, `assemble_restore` there or on the
// restore-prep thread. `snapshot` holds the control mutex, so no start, pause, resume or stop
// interleaves; the vCPU threads are parked in their mailboxes and the device workers paused,
// so nothing changes guest memory or device state while it is read. A restore works on a VM
// no other thread knows yet (its own threads are parked until it resumes).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "vmm/devices/legacy/debug_port.h"
#include "vmm/devices/legacy/serial_8250.h"
#include "vmm/devices/legacy/vm_generation.h"
#include "vmm/devices/legacy/wait_port.h"
#include "vmm/kvm/cpuid.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/kvm/warm_vm.h"
#include "vmm/restore_spares.h"
#include "vmm/snapshot/open_snapshot.h"
#include "vmm/snapshot/state_file.h"
#include "vmm/snapshot/vm_snapshot.h"
#include "vmm/util/read_file.h"
#include "vmm/vm.h"
#include "vmm/vstate/vcpu_state.h"

namespace nodevisor::vmm {

namespace {

// Writes a file as `<path>.tmp` and renames it into place, so a reader (or a crash) never sees
// half a file under the final name. `fill` writes the content into the fd it is given.
template <typename Fill>
Status write_file_atomically(const std::string& path, Fill fill) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return sys_error(errno, "open", "cannot create " + tmp).at(tmp);
  Status filled = fill(fd.get());
  if (!filled.ok()) {
    unlink(tmp.c_str());
    return Error(filled.error()).at(tmp);
  }
  fd.reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return sys_error(err, "rename", "cannot move the snapshot file into place").at(path);
  }
  return {};
}

Status write_all(int fd, std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return sys_error(n < 0 ? errno : EIO, "write", "cannot write the snapshot state");
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Status Vm::snapshot(const std::string& dir) {
  std::lock_guard control(control_mutex_);
  {
    std::lock_guard lock(state_mutex_);
    if (state_ != VmState::kPaused) {
      return plain_error("EBUSY", std::string("cannot snapshot a VM that is ") + vm_state_name(state_) +
                                      (state_ == VmState::kRunning ? ": pause it first" : ""));
    }
  }
  // A restore resumed and paused again before vCPU 0 loaded its time state (resume_restore):
  // loaded now (the vCPUs are parked), so the snapshot holds the restored VM, not an assembly.
  if (restore_pending_.load(std::memory_order_acquire)) NV_TRY(complete_restore(/*release=*/false));
  // Net slots are recorded empty: a tap is host state (an fd, a device in some netns) that a
  // clone could not share. Endpoints given at boot cannot be emptied, so such a VM is refused.
  if (!config_.netdevs.empty()) {
    return plain_error("ENOTSUP", "cannot snapshot a VM with network endpoints given at boot (netdevs): "
                                  "give it empty net slots (hotplugNetSlots) and attach endpoints after restore");
  }
  auto system = KvmSystem::get();
  if (!system.ok()) return system.error();

  snapshot::VmSnapshot snap;
  snap.config = config_;
  snap.coalesce_com1 = coalesced_ring_ != nullptr;
  snap.xsave_size = system.value()->xsave_size();
  snap.cpuid = cpuid_base_;
  for (auto& vcpu : vcpus_) {
    auto saved = save_vcpu_state(*vcpu);
    if (!saved.ok()) return saved.error();
    snap.vcpus.push_back(std::move(saved.value()));
  }
  NV_TRY(kvm_vm_.get_irqchip(KVM_IRQCHIP_PIC_MASTER, snap.pic_master));
  NV_TRY(kvm_vm_.get_irqchip(KVM_IRQCHIP_PIC_SLAVE, snap.pic_slave));
  NV_TRY(kvm_vm_.get_irqchip(KVM_IRQCHIP_IOAPIC, snap.ioapic));
  NV_TRY(kvm_vm_.get_pit(snap.pit));
  NV_TRY(kvm_vm_.get_clock(snap.clock));
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  // attach/detach may run while a VM is paused (they take neither the control mutex nor all
  // device locks at once): read the slots before and after the devices, and refuse a snapshot
  // that a hot-plug ran through, rather than pair a slot's disk with another slot state.
  const auto slots = [&] {
    return set ? set->hotplugged_disks() : std::vector<std::pair<uint32_t, virtio::DiskConfig>>{};
  };
  const auto taps = [&] { return set ? set->nets_with_tap() : std::vector<uint32_t>{}; };
  const auto taps_before = taps();
  if (!taps_before.empty()) {
    return plain_error("ENOTSUP", "cannot snapshot a VM whose net slot " + std::to_string(taps_before.front()) +
                                      " holds a tap (host state a clone cannot share): detach its network (vm.detachNet) first");
  }
  const auto before = slots();
  for (auto& device : devices_) snap.devices.push_back(device->save());
  const auto after = slots();
  if (!taps().empty()) {
    return plain_error("EBUSY", "a network endpoint was attached while the snapshot was taken; detach it and take it again");
  }
  const auto same = [](const auto& a, const auto& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].first != b[i].first || a[i].second.path != b[i].second.path || a[i].second.serial != b[i].second.serial) {
        return false;
      }
    }
    return true;
  };
  if (!same(before, after)) {
    return plain_error("EBUSY", "a disk was attached or detached while the snapshot was taken; take it again");
  }
  for (const auto& [slot, disk] : after) snap.disks.push_back({slot, disk.path, disk.serial, disk.read_only});
  snap.generation = generation();

  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return sys_error(errno, "mkdir", "cannot create the snapshot directory " + dir).at(dir);
  }
  // Memory first: a directory with a state file always has the memory that goes with it.
  NV_TRY(write_file_atomically(snapshot::snapshot_file(dir, "memory"), [&](int fd) { return memory_->write_image(fd); }));
  const std::vector<uint8_t> file = snapshot::seal_state_file(snapshot::encode_vm_snapshot(snap));
  return write_file_atomically(snapshot::snapshot_file(dir, "state"), [&](int fd) { return write_all(fd, file); });
}

Result<std::unique_ptr<Vm>> Vm::restore(const std::string& dir, VmEventSink& sink, const WaitPortWords& wait_words,
                                         std::span<const uint8_t> agent_input, bool paused) {
  // A VM assembled ahead for this directory (restore_spares.h), else assembled here.
  std::unique_ptr<Vm> vm = RestoreSpares::instance().take(dir, wait_words);
  if (!vm) {
    auto opened = snapshot::open_snapshot(dir);
    if (!opened.ok()) return opened.error();
    // An empty KVM VM made ahead (kvm/warm_vm.h) when there is one.
    auto kernel = snapshot::make_restore_kernel(*opened.value().snap, std::move(opened.value().memory),
                                                WarmVmCache::instance().take_empty());
    if (!kernel.ok()) return kernel.error();
    auto assembled = assemble_restore(opened.value(), std::move(kernel.value()), wait_words);
    if (!assembled.ok()) return assembled.error();
    vm = std::move(assembled.value());
    RestoreSpares::instance().count_assembled();
  }
  // On failure the unique_ptr stops the VM: threads joined, fds and memory to the reaper.
  NV_TRY(vm->finish_restore(sink, agent_input, paused));
  return vm;
}

Result<std::unique_ptr<Vm>> Vm::assemble_restore(const snapshot::OpenedSnapshot& opened, snapshot::RestoreKernel kernel,
                                                  const WaitPortWords& wait_words) {
  // If anything below fails, the unique_ptr takes the half-built VM down: device workers
  // joined, vCPU and VM fds closed, memory unmapped.
  VmConfig config = opened.snap->config;
  config.wait_words = wait_words;
  std::unique_ptr<Vm> vm(new Vm(config, null_event_sink()));
  NV_TRY(vm->restore_from(*opened.snap, std::move(kernel), opened.state_path));
  vm->unfinished_ = opened.snap;
  vm->unfinished_state_path_ = opened.state_path;
  // The queues' pages made this VM's own now, on the assembling thread, rather than by the
  // first device access once it runs (a copy-on-write fault each).
  if (std::shared_ptr<virtio::DeviceManager> set = vm->virtio_devices()) set->prefault_queues();
  // The vCPU threads exist from here on, parked until finish_restore resumes them.
  NV_TRY(vm->start(/*paused=*/true));
  return vm;
}

Status Vm::finish_restore(VmEventSink& sink, std::span<const uint8_t> agent_input, bool paused) {
  NV_TRY(begin_restore(agent_input));
  NV_TRY(complete_restore(/*release=*/false));
  // The caller's sink last: a restore that fails above ends with its "stopped" event going
  // nowhere, as for a VM that never started.
  bind_sink(sink);
  if (!paused) NV_TRY(resume());
  return {};
}

Status Vm::resume_restore(VmEventSink& sink, std::span<const uint8_t> agent_input) {
  // Host memory only here: vCPU 0 loads the time state and fills the guest's buffers.
  NV_TRY(begin_restore(agent_input));
  bind_sink(sink);
  return resume();
}

Status Vm::begin_restore(std::span<const uint8_t> agent_input) {
  if (!unfinished_) return plain_error("EINVAL", "this VM's restore was finished already");
  if (!agent_input.empty()) {
    std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
    if (!set || set->console() == nullptr) return plain_error("EINVAL", "the snapshot's VM has no agent channel for the agent input");
    if (set->console()->queue_input(agent_input) != agent_input.size()) {
      return plain_error("E2BIG", "the agent input (" + std::to_string(agent_input.size()) +
                                      " bytes) is more than the agent channel's buffer takes");
    }
  }
  std::lock_guard lock(restore_mutex_);
  restore_input_ = !agent_input.empty();
  restore_pending_.store(true, std::memory_order_release);
  return {};
}

void Vm::bind_sink(VmEventSink& sink) {
  sink_.store(&sink, std::memory_order_release);
  debug_port_->set_origin(monotonic_ns());  // phases count from now, not from the assembly
}

Status Vm::load_time_state() {
  const snapshot::VmSnapshot& snap = *unfinished_;
  const auto bad = [&](const std::string& what, const Error& e) {
    return snapshot::bad_snapshot(unfinished_state_path_, what + ": " + e.message);
  };
  // The PIT and the clock, and each vCPU's timers, now: loaded when the VM was assembled, they
  // would have counted the time it waited. The clock is set without flags: the guest's
  // kvmclock goes on from the saved value (time stood still while it was saved; a Linux
  // guest's agent is told the time after a restore, Kata's B39).
  Status pit = kvm_vm_.set_pit(snap.pit);
  if (!pit.ok()) return bad("PIT", pit.error());
  kvm_clock_data clock{};
  clock.clock = snap.clock.clock;
  Status set = kvm_vm_.set_clock(clock);
  if (!set.ok()) return bad("KVM clock", set.error());
  for (uint32_t index = 0; index < vcpus_.size(); ++index) {
    Status restored = restore_vcpu_state(*vcpus_[index], snap.vcpus[index], VcpuStateStep::kTimers);
    if (!restored.ok()) return bad("vCPU " + std::to_string(index), restored.error());
  }
  return {};
}

void Vm::hand_in_agent_input() {
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (!set || set->console() == nullptr) return;
  set->console()->fill_receive_buffers();
  // As write_agent (vm_virtio.cc): the probe's wait port learns there is virtio work.
  if (wait_port_ && config_.wait_words.virtio_work != 0) wait_port_->post_coalesced(config_.wait_words.virtio_work);
}

Status Vm::complete_restore(bool release) {
  std::lock_guard lock(restore_mutex_);
  if (!restore_pending_.load(std::memory_order_relaxed)) return {};  // done already, by another thread
  Status loaded = load_time_state();
  if (loaded.ok() && restore_input_) hand_in_agent_input();
  unfinished_.reset();
  restore_failed_ = !loaded.ok();
  {
    // Under irq_mutex_: a COM1 interrupt raised meanwhile was kept back (add_legacy_devices).
    std::lock_guard irq(irq_mutex_);
    restore_pending_.store(false, std::memory_order_release);
    if (serial_irq_deferred_ && loaded.ok() && kvm_vm_.fd() >= 0) {
      (void)kvm_vm_.set_irq_line(Serial8250::kCom1Irq, true);
      (void)kvm_vm_.set_irq_line(Serial8250::kCom1Irq, false);
    }
    serial_irq_deferred_ = false;
  }
  // vCPU 0, resumed: the devices and the other vCPUs go now, unless a pause came meanwhile
  // (pause() asks under restore_mutex_; vCPU 0's own request then says so), when they stay
  // parked and the next resume() lets them all go.
  if (loaded.ok() && release && !threads_.empty() && threads_.front()->run_requested()) {
    release_virtio();  // woken by vcpu_resumed, next
    for (size_t i = 1; i < threads_.size(); ++i) threads_[i]->request_resume();
  }
  return loaded;
}

Status Vm::restore_from(const snapshot::VmSnapshot& snap, snapshot::RestoreKernel kernel, const std::string& state_path) {
  const auto bad = [&](const std::string& what, const Error& e) { return snapshot::bad_snapshot(state_path, what + ": " + e.message); };
  restoring_ = true;
  memory_ = std::move(kernel.objects.memory);
  kvm_vm_ = std::move(kernel.objects.vm);
  std::vector<std::unique_ptr<KvmVcpu>> vcpus = std::move(kernel.objects.vcpus);
  if (kernel.coalesced_page != 0 && !vcpus.empty()) coalesced_ring_ = vcpus.front()->coalesced_ring(kernel.coalesced_page);

  // The same devices in the same order as the VM that was saved (its config is ours), boot
  // disks reopened by path, net slots empty (their transports and config generation restored
  // below; endpoints are attached again after the restore).
  auto virtio_entries = add_virtio_devices();
  if (!virtio_entries.ok()) return virtio_entries.error();
  NV_TRY(add_legacy_devices());
  pause_virtio(true);  // until start: device workers leave the restored queues alone
  {
    std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
    for (const auto& disk : snap.disks) {
      if (!set) return snapshot::bad_snapshot(state_path, "a disk in a hot-plug slot, but the VM has no virtio devices");
      NV_TRY(set->restore_disk(disk.slot, {disk.path, disk.read_only, disk.serial}));
    }
    if (snap.devices.size() != devices_.size()) {
      return snapshot::bad_snapshot(state_path, "holds " + std::to_string(snap.devices.size()) + " devices; its VM config makes " +
                                                    std::to_string(devices_.size()));
    }
    for (size_t i = 0; i < devices_.size(); ++i) {
      Status restored = devices_[i]->restore(snap.devices[i]);
      if (!restored.ok()) return bad("device " + std::to_string(i), restored.error());
    }
    // A fresh agent channel: nothing the old host had queued, nothing the old guest wrote.
    if (set && set->console() != nullptr) set->console()->discard_host_buffers();
  }
  // This VM's own generation id where the guest reads it (the saved VM's address).
  {
    Status published = publish_generation();
    if (!published.ok()) return bad("VM generation", published.error());
  }

  // The in-kernel interrupt controllers (the PIT and the clock count time: finish_restore).
  const auto vm_state = [&](const char* what, Status s) -> Status {
    if (!s.ok()) return bad(what, s.error());
    return {};
  };
  NV_TRY(vm_state("PIC master", kvm_vm_.set_irqchip(snap.pic_master)));
  NV_TRY(vm_state("PIC slave", kvm_vm_.set_irqchip(snap.pic_slave)));
  NV_TRY(vm_state("IOAPIC", kvm_vm_.set_irqchip(snap.ioapic)));

  cpuid_base_ = snap.cpuid;
  for (uint32_t index = 0; index < config_.vcpus; ++index) {
    if (index >= vcpus.size()) return bad("vCPU " + std::to_string(index), plain_error("EINVAL", "was not created"));
    Status restored = restore_vcpu_state(*vcpus[index], snap.vcpus[index], VcpuStateStep::kRegisters);
    if (!restored.ok()) return bad("vCPU " + std::to_string(index), restored.error());
    vcpus_.push_back(std::move(vcpus[index]));
  }
  return {};
}

}  // namespace nodevisor::vmm
