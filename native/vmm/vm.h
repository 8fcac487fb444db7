// One virtual machine: KVM VM and vCPUs, guest memory, the legacy devices on the port-I/O
// bus, the virtio-mmio devices on the MMIO bus, the vCPU threads, and how the VM ends.
//
// Threads:
// - `create` runs on a worker thread (it reads files and makes many ioctls).
// - `start`, `pause`, `resume`, `stop` run on a controlling thread (the JS thread or a libuv
//   worker); a control mutex serialises them, so two callers never interleave. It is never
//   held while waiting on the guest: pause() waits for the vCPUs without it, and stop() tells
//   the devices to drop their work before it joins the vCPUs (which then leave at once).
// - vCPU threads run the guest and call the VmEventSink; the sink must outlive the Vm.
// - `write_console`, `post_wait_word`, `read_guest` may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "vmm/arch/x86_64/kernel_image.h"
#include "vmm/bus/bus.h"
#include "vmm/device_manager/device_manager.h"
#include "vmm/kvm/kvm_vcpu.h"
#include "vmm/kvm/kvm_vm.h"
#include "vmm/memory/guest_memory.h"
#include "sys/result.h"
#include "vmm/vstate/vcpu_exit_handler.h"
#include "vmm/vstate/vcpu_thread.h"

namespace nodevisor::vmm {

class Serial8250;
class DebugPort;
class WaitPort;
class VmGeneration;
namespace snapshot {
struct VmSnapshot;
struct RestoreKernel;
struct OpenedSnapshot;
}

// The words the wait port (devices/legacy/wait_port.h) posts to a guest parked on it when
// console input arrives or virtio work waits; 0: post nothing. The VMM does not know what a
// guest makes of them: whoever runs the guest says (the addon, for the probe guest).
struct WaitPortWords {
  uint32_t console_input = 0;
  uint32_t virtio_work = 0;
  bool operator==(const WaitPortWords&) const = default;
};

struct VmConfig {
  std::string kernel_path;
  std::string initrd_path;  // empty: none
  std::string cmdline;
  uint64_t memory_mib = 128;
  uint32_t vcpus = 1;
  std::chrono::milliseconds wait_port_timeout{1000};
  WaitPortWords wait_words;
  // Start a guest that carries the nodevisor user-entry note (the probe) at its PVH entry
  // anyway, as QEMU would (tests and benchmarks compare both ways).
  bool pvh_entry_only = false;
  // virtio-mmio devices (vm_virtio.cc): the agent console, boot disks, empty hot-plug slots.
  bool agent_console = true;
  std::vector<virtio::DiskConfig> disks;
  uint32_t hotplug_slots = 0;
  // virtio-net endpoints at boot and empty net slots for hot-plug (after the disks).
  std::vector<virtio::NetdevConfig> netdevs;
  uint32_t hotplug_net_slots = 0;
  // Also list the devices as `virtio_mmio.device=` on the command line (ACPI always has them).
  bool virtio_cmdline = true;
};

constexpr uint64_t kMaxMemoryMib = 64 * 1024;
constexpr uint32_t kMaxVcpus = 64;

struct VmExitInfo {
  std::string reason;  // "stopped", "guest-exit", "reset", "shutdown", "poweroff", "internal-error", ...
  uint32_t code = 0;   // the value written to the exit port (guest-exit)
  std::string detail;  // human text for errors
};

// Called on vCPU threads (console, phase, exit) or the stopping thread (exit "stopped").
// Implementations must not block and must not call back into the Vm.
class VmEventSink {
 public:
  virtual ~VmEventSink() = default;
  virtual void on_console_output(uint8_t byte) = 0;
  virtual void on_phase(uint8_t code, uint64_t ns_since_start) = 0;
  virtual void on_exit(const VmExitInfo& exit) = 0;
  // The agent console (virtio-console) has guest output to read / room for more input.
  // Called on a device worker thread with the device locked: signal only.
  virtual void on_agent_readable() {}
  virtual void on_agent_writable() {}
};

// Drops every event: what a VM assembled ahead of its restore reports to until it is finished.
VmEventSink& null_event_sink();

enum class VmState { kCreated, kRunning, kPaused, kExited, kStopped };
const char* vm_state_name(VmState state);

class Vm final : private VcpuExitHandler {
 public:
  static Result<std::unique_ptr<Vm>> create(const VmConfig& config, VmEventSink& sink);
  // A new VM from a snapshot directory written by `snapshot` (vm_restore.cc): guest memory
  // mapped copy-on-write from `dir/memory`, every vCPU and device restored from `dir/state`,
  // disks reopened by path, a fresh agent channel and a new generation id; started, running
  // or (`paused`) paused. A bad snapshot is an EBADSNAPSHOT error naming the file; nothing of
  // the half-built VM is left behind. Runs on a worker thread. `wait_words` are not part of a
  // snapshot: the caller says them again, as for `create`. Takes the VM assembled ahead for
  // `dir` (restore_spares.h) when there is one. `agent_input` is delivered to the guest's
  // agent channel as part of the restore, before anything runs: a first request the guest
  // finds as it starts.
  static Result<std::unique_ptr<Vm>> restore(const std::string& dir, VmEventSink& sink,
                                             const WaitPortWords& wait_words = {},
                                             std::span<const uint8_t> agent_input = {}, bool paused = false);
  // A restore that goes on from a VM taken from restore_spares without waiting (`take_now`),
  // on the calling thread (the JS thread: no file, KVM or guest-memory access here): binds
  // `sink`, queues `agent_input`, resumes. vCPU 0 then loads the timers and clock and puts the
  // input in the guest's receive buffers before any vCPU runs the guest (vcpu_resumed); a
  // failure there ends the VM (exit "internal-error"). E2BIG when the input does not fit.
  Status resume_restore(VmEventSink& sink, std::span<const uint8_t> agent_input);
  // The part of a restore that depends on the snapshot alone (restore_spares.h makes it ahead):
  // the VM built, its state loaded but for the timers and clock, its vCPU threads started and
  // parked, its events going nowhere yet. Only `restore` (finish_restore) goes on from here.
  static Result<std::unique_ptr<Vm>> assemble_restore(const snapshot::OpenedSnapshot& opened,
                                                      snapshot::RestoreKernel kernel, const WaitPortWords& wait_words);
  ~Vm() override;

  // Runs the vCPUs; with `paused`, the VM starts in the paused state (resume runs it).
  Status start(bool paused = false);
  Status pause();
  Status resume();
  // Idempotent: stops the vCPU threads, joins them, and reports exit "stopped" unless the
  // guest ended first.
  void stop();

  VmState state() const;
  size_t write_console(std::span<const uint8_t> bytes);
  bool post_wait_word(uint32_t word);
  Result<std::vector<uint8_t>> read_guest(uint64_t address, uint64_t length) const;
  // virtio (vm_virtio.cc). Hot-plug a disk into a free slot → its slot number; empty a slot.
  // Any thread but a vCPU's (opening a disk may wait on it).
  Result<uint32_t> attach_disk(const virtio::DiskConfig& disk);
  Status detach_disk(uint32_t slot);
  // Network hot-plug: opens the endpoint's tap (inside its netns) into a free net slot → the
  // slot number; empties a slot (the device's link goes down). Any thread but a vCPU's.
  Result<uint32_t> attach_net(const virtio::NetdevConfig& net);
  Status detach_net(uint32_t slot);
  // The agent channel: queue bytes for the guest (returns how many were taken) / take the
  // guest's output. Any thread.
  size_t write_agent(std::span<const uint8_t> bytes);
  std::vector<uint8_t> read_agent(size_t max);

  // Writes a snapshot of this paused VM into `dir` (created if missing): `dir/memory` (guest
  // RAM, sparse) and `dir/state` (snapshot/state_file.h). A running VM is refused (EBUSY).
  // Runs on a worker thread; the VM stays paused and usable.
  Status snapshot(const std::string& dir);
  // This VM instance's generation id (devices/legacy/vm_generation.h).
  uint64_t generation() const;

 private:
  Vm(const VmConfig& config, VmEventSink& sink);
  Status build();
  Status add_legacy_devices();
  // Creates the virtio devices and their ACPI tables; returns the command-line entries.
  Result<std::string> add_virtio_devices();
  std::shared_ptr<virtio::DeviceManager> virtio_devices() const;
  void shut_down_virtio();
  void pause_virtio(bool paused);
  // Unpauses the devices without waking their workers: vCPU 0 does, as it leaves its pause.
  void release_virtio();
  Status setup_vcpus(const x86_64::BootEntry& boot);
  // vm_snapshot.cc: builds this (new) VM from a decoded snapshot.
  Status restore_from(const snapshot::VmSnapshot& snap, snapshot::RestoreKernel kernel, const std::string& state_path);
  // The rest of a restore, on an assembled VM, all on the calling thread (a worker): the time
  // state and the agent input (complete_restore), then `sink`, then a resume unless `paused`.
  Status finish_restore(VmEventSink& sink, std::span<const uint8_t> agent_input, bool paused);
  // What both ways of finishing start with: `agent_input` queued on the host side (E2BIG when
  // it does not fit) and the restore marked pending for complete_restore.
  Status begin_restore(std::span<const uint8_t> agent_input);
  // Binds the caller's sink: nothing has run, so nothing was reported to the placeholder; the
  // threads that will report (parked vCPUs, paused device workers) see it once resumed.
  void bind_sink(VmEventSink& sink);
  // Parts of complete_restore: the PIT, the clock and each vCPU's timers from `unfinished_`;
  // the queued agent input into the guest's buffers, with the wait-port word that says so.
  Status load_time_state();
  void hand_in_agent_input();
  // Loads a pending restore's time state and hands in its agent input: on a worker
  // (finish_restore), on vCPU 0 as it leaves its pause after resume_restore — with `release`,
  // it then lets the devices and the other vCPUs go (resume() held them back) — or on the
  // snapshot thread for a VM paused before vCPU 0 got there. Returns the failure, once, to the
  // thread that did it; resume() refuses after one.
  Status complete_restore(bool release);
  void end(VmExitInfo info);
  // Writes this VM's generation id where the guest reads it (VmGeneration::address), if anywhere.
  Status publish_generation();

  // VcpuExitHandler, on vCPU threads.
  void pio_read(uint16_t port, std::span<uint8_t> data) override;
  void pio_write(uint16_t port, std::span<const uint8_t> data) override;
  void mmio_read(uint64_t address, std::span<uint8_t> data) override;
  void mmio_write(uint64_t address, std::span<const uint8_t> data) override;
  void vcpu_ended(uint32_t vcpu_index, const std::string& reason, const std::string& detail) override;
  bool vcpu_resumed(uint32_t vcpu_index) override;
  void drain_buffered_writes() override;

  const VmConfig config_;
  // Where events go. An assembled restore reports to a sink that drops them until its restore
  // binds the caller's (bind_sink, before any thread of the VM runs).
  std::atomic<VmEventSink*> sink_;
  VmEventSink& sink() const { return *sink_.load(std::memory_order_acquire); }
  // An assembled restore not finished yet: the snapshot its timers and clock come from.
  std::shared_ptr<const snapshot::VmSnapshot> unfinished_;
  std::string unfinished_state_path_;
  // resume_restore's hand-off to vCPU 0 (complete_restore). restore_mutex_ guards the flags
  // and unfinished_ while it is pending; the atomic is the vCPU threads' quick check.
  // Lock order: control_mutex_, restore_mutex_, then a VcpuThread's, a device's or irq_mutex_.
  std::atomic<bool> restore_pending_{false};
  std::mutex restore_mutex_;
  bool restore_input_ = false;   // agent input was queued: complete_restore hands it in
  bool restore_failed_ = false;  // complete_restore failed: the VM does not run again
  bool serial_irq_deferred_ = false;  // a COM1 interrupt raised while the restore was pending; irq_mutex_

  KvmVm kvm_vm_;
  std::unique_ptr<GuestMemory> memory_;
  Bus pio_bus_{"port I/O"};
  Bus mmio_bus_{"MMIO"};
  std::shared_ptr<Serial8250> serial_;
  std::shared_ptr<DebugPort> debug_port_;
  std::shared_ptr<WaitPort> wait_port_;
  std::shared_ptr<VmGeneration> generation_;
  // KVM's supported CPUID table the vCPUs were derived from (a restored VM: the snapshot's).
  std::vector<kvm_cpuid_entry2> cpuid_base_;
  bool restoring_ = false;  // built from a snapshot: guest memory already holds the boot data
  std::vector<std::shared_ptr<BusDevice>> devices_;  // every device, for save/restore
  // Shared so that attach/agent I/O (any thread) can hold the set while stop() drops it;
  // virtio_mutex_ guards only the pointer, never a blocking call: `virtio_devices` copies it
  // (null once stopped).
  std::shared_ptr<virtio::DeviceManager> virtio_;
  std::vector<uint8_t> agent_leftover_;  // guest output still unread when the VM stopped
  mutable std::mutex virtio_mutex_;
  std::vector<std::unique_ptr<KvmVcpu>> vcpus_;
  std::vector<std::unique_ptr<VcpuThread>> threads_;

  // The coalesced-write ring (COM1 output of the probe guest); shared by all vCPUs, so
  // draining it is serialised.
  kvm_coalesced_mmio_ring* coalesced_ring_ = nullptr;
  std::mutex coalesced_mutex_;
  std::mutex irq_mutex_;  // kvm_vm_'s fd against the serial's interrupt from other threads

  mutable std::mutex control_mutex_;  // serialises start/pause/resume/stop (and memory release)
  // pause() calls waiting for the vCPUs without control_mutex_; stop() keeps threads_ until
  // they are done. Guarded by control_mutex_.
  int pausers_ = 0;
  // Set by resume(): vCPU 0 wakes the device workers as it leaves its pause (vcpu_resumed),
  // so the thread that resumes pays for one wake-up (the vCPU's), not one per device too.
  std::atomic<bool> devices_need_wake_{false};
  bool stopping_ = false;  // stop() has begun
  std::condition_variable pausers_done_;
  mutable std::mutex state_mutex_;  // guards state_, ended_
  VmState state_ = VmState::kCreated;
  bool ended_ = false;
};

}  // namespace nodevisor::vmm
