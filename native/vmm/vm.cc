#include "vmm/vm.h"

#include "vmm/arch/x86_64/kernel_image.h"
#include "vmm/devices/legacy/debug_port.h"
#include "vmm/devices/legacy/exit_port.h"
#include "vmm/devices/legacy/i8042.h"
#include "vmm/devices/legacy/serial_8250.h"
#include "vmm/devices/legacy/vm_generation.h"
#include "vmm/devices/legacy/wait_port.h"
#include "vmm/kvm/cpuid.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/kvm/warm_vm.h"
#include "vmm/util/hex.h"
#include "vmm/util/read_file.h"
#include "vmm/util/reaper.h"
#include "vmm/vstate/vcpu_state.h"

namespace nodevisor::vmm {


const char* vm_state_name(VmState state) {
  switch (state) {
    case VmState::kCreated: return "created";
    case VmState::kRunning: return "running";
    case VmState::kPaused: return "paused";
    case VmState::kExited: return "exited";
    case VmState::kStopped: return "stopped";
  }
  return "unknown";
}

Vm::Vm(const VmConfig& config, VmEventSink& sink) : config_(config), sink_(&sink) {}

VmEventSink& null_event_sink() {
  class NullSink final : public VmEventSink {
    void on_console_output(uint8_t) override {}
    void on_phase(uint8_t, uint64_t) override {}
    void on_exit(const VmExitInfo&) override {}
  };
  // Never destroyed: a spare VM stopped during static destruction (~RestoreSpares) still reports to it.
  static NullSink* sink = new NullSink;
  return *sink;
}

Vm::~Vm() {
  // A VM that never started (or failed to build) ends silently; a running one is stopped.
  bool never_started;
  {
    std::lock_guard lock(state_mutex_);
    never_started = state_ == VmState::kCreated;
  }
  if (!never_started) stop();
}

Result<std::unique_ptr<Vm>> Vm::create(const VmConfig& config, VmEventSink& sink) {
  if (config.memory_mib == 0 || config.memory_mib > kMaxMemoryMib) {
    return plain_error("EINVAL", "memoryMiB must be between 1 and " + std::to_string(kMaxMemoryMib));
  }
  if (config.vcpus == 0 || config.vcpus > kMaxVcpus) {
    return plain_error("EINVAL", "vcpus must be between 1 and " + std::to_string(kMaxVcpus));
  }
  std::unique_ptr<Vm> vm(new Vm(config, sink));
  NV_TRY(vm->build());
  return vm;
}

Status Vm::build() {
  const uint64_t memory_bytes = config_.memory_mib << 20;
  auto kernel = read_whole_file(config_.kernel_path, memory_bytes, "kernel");
  if (!kernel.ok()) return kernel.error();
  std::vector<uint8_t> initrd;
  if (!config_.initrd_path.empty()) {
    auto read = read_whole_file(config_.initrd_path, memory_bytes, "initrd");
    if (!read.ok()) return read.error();
    initrd = std::move(read.value());
  }

  if (auto warm = WarmVmCache::instance().take(memory_bytes, config_.vcpus)) {
    // Made ahead of time on the prewarm thread (kvm/warm_vm.h): memory, VM, irqchip, PIT and
    // the vCPUs with their CPUID (setup_vcpus does the rest).
    memory_ = std::move(warm->memory);
    kvm_vm_ = std::move(warm->vm);
    vcpus_ = std::move(warm->vcpus);
  } else {
    // Memory first: KvmVm registers it before creating the irqchip (see kvm_vm.h for why).
    auto memory = GuestMemory::create(memory_bytes);
    if (!memory.ok()) return memory.error();
    memory_ = std::make_unique<GuestMemory>(std::move(memory.value()));
    auto kvm_vm = KvmVm::create(*memory_);
    if (!kvm_vm.ok()) return kvm_vm.error();
    kvm_vm_ = std::move(kvm_vm.value());
  }

  // ELF (PVH, or the probe's CPL-3 entry) or bzImage, by content (arch/x86_64/kernel_image.h).
  auto loaded = x86_64::load_kernel_image(*memory_, kernel.value(), !config_.pvh_entry_only);
  if (!loaded.ok()) {
    Error e = loaded.error();
    e.path = config_.kernel_path;
    return e;
  }
  // virtio devices before the boot data: their command-line entries join the user's.
  auto virtio_entries = add_virtio_devices();
  if (!virtio_entries.ok()) return virtio_entries.error();
  std::string cmdline = config_.cmdline;
  if (!virtio_entries->empty()) cmdline += (cmdline.empty() ? "" : " ") + virtio_entries.value();
  auto boot = x86_64::write_boot_data(*memory_, kernel.value(), loaded.value(), cmdline, initrd);
  if (!boot.ok()) return boot.error();
  NV_TRY(add_legacy_devices());
  // The guest reads the VM generation id in its memory where its ELF note asked (the loader
  // checked the address is aligned and in RAM).
  generation_->set_address(loaded->generation_gpa);
  NV_TRY(publish_generation());
  return setup_vcpus(boot.value());
}

Status Vm::add_legacy_devices() {
  serial_ = std::make_shared<Serial8250>(
      [this](uint8_t byte) { sink().on_console_output(byte); },
      [this] {
        // ISA interrupts are edges: pulse the line. A failure here cannot be reported to the
        // guest; the in-kernel irqchip does not fail for a valid line. Console input from the
        // JS thread can race stop(), which closes the VM fd: irq_mutex_ keeps this from using
        // a closed (or already reused) fd number.
        std::lock_guard lock(irq_mutex_);
        if (kvm_vm_.fd() < 0) return;
        // A restore whose LAPIC is still to load (complete_restore) would lose it: pulsed then.
        if (restore_pending_.load(std::memory_order_acquire)) {
          serial_irq_deferred_ = true;
          return;
        }
        (void)kvm_vm_.set_irq_line(Serial8250::kCom1Irq, true);
        (void)kvm_vm_.set_irq_line(Serial8250::kCom1Irq, false);
      });
  debug_port_ = std::make_shared<DebugPort>([this](uint8_t code, uint64_t ns) { sink().on_phase(code, ns); });
  wait_port_ = std::make_shared<WaitPort>(config_.wait_port_timeout);
  auto i8042 = std::make_shared<I8042>([this] { end({"reset", 0, "the guest reset the machine (i8042)"}); });
  auto exit_port = std::make_shared<ExitPort>([this](uint32_t code) { end({"guest-exit", code, ""}); });
  generation_ = std::make_shared<VmGeneration>();

  NV_TRY(pio_bus_.insert(Serial8250::kCom1Port, Serial8250::kPortCount, serial_));
  NV_TRY(pio_bus_.insert(DebugPort::kPort, 1, debug_port_));
  NV_TRY(pio_bus_.insert(I8042::kDataPort, I8042::kCommandPort - I8042::kDataPort + 1, i8042));
  NV_TRY(pio_bus_.insert(ExitPort::kPort, ExitPort::kPortCount, exit_port));
  NV_TRY(pio_bus_.insert(WaitPort::kPort, WaitPort::kPortCount, wait_port_));
  NV_TRY(pio_bus_.insert(VmGeneration::kPort, VmGeneration::kPortCount, generation_));
  // The saved device list (snapshots) is in this order; virtio transports were added first.
  devices_.insert(devices_.end(), {serial_, debug_port_, i8042, exit_port, wait_port_, generation_});
  return {};
}

Status Vm::setup_vcpus(const x86_64::BootEntry& boot) {
  auto system = KvmSystem::get();
  if (!system.ok()) return system.error();
  cpuid_base_ = system.value()->supported_cpuid();
  // vCPUs that came with a spare VM (kvm/warm_vm.h) have their CPUID already.
  std::vector<std::unique_ptr<KvmVcpu>> prepared = std::move(vcpus_);
  vcpus_.clear();
  for (uint32_t index = 0; index < config_.vcpus; ++index) {
    std::unique_ptr<KvmVcpu> owned;
    if (index < prepared.size()) {
      owned = std::move(prepared[index]);
    } else {
      auto vcpu = KvmVcpu::create(kvm_vm_, index);
      if (!vcpu.ok()) return vcpu.error();
      owned = std::make_unique<KvmVcpu>(std::move(vcpu.value()));
      NV_TRY(owned->set_cpuid(vcpu_cpuid(system.value()->supported_cpuid(), index, config_.vcpus)));
    }
    NV_TRY(owned->set_msrs(boot_msrs()));
    if (index == 0 && boot.mode == x86_64::BootMode::kNodevisorUser) {
      // The probe polls nothing on its UART and only writes bytes to it: its console output
      // can be buffered by KVM and played at the next exit instead of exiting per byte
      // (22 exits for the banner). Not for Linux guests: their 8250 driver waits for a
      // transmit interrupt that would only come at some later, unrelated exit.
      const uint32_t page = kvm_vm_.coalesce_pio_writes(Serial8250::kCom1Port, 1);
      coalesced_ring_ = owned->coalesced_ring(page);
    }
    if (index == 0) {
      // The boot vCPU starts at the kernel's entry (PVH, Linux 64-bit or the probe's CPL-3
      // entry). The others stay in KVM's wait-for-SIPI state until the guest wakes them
      // through its local APIC, as on real hardware.
      kvm_regs regs{};
      kvm_sregs sregs{};
      NV_TRY(owned->get_sregs(sregs));
      x86_64::boot_registers(boot, regs, sregs);
      NV_TRY(owned->set_sregs(sregs));
      NV_TRY(owned->set_regs(regs));
      kvm_fpu fpu{};
      fpu.fcw = 0x37f;     // x87 default control word
      fpu.mxcsr = 0x1f80;  // SSE exceptions masked
      NV_TRY(owned->set_fpu(fpu));
    }
    vcpus_.push_back(std::move(owned));
  }
  return {};
}

Status Vm::start(bool paused) {
  std::lock_guard control(control_mutex_);
  {
    std::lock_guard lock(state_mutex_);
    if (state_ != VmState::kCreated) {
      return plain_error("EBUSY", std::string("cannot start a VM that is ") + vm_state_name(state_));
    }
  }
  debug_port_->set_origin(monotonic_ns());
  if (paused) {
    // As pause() leaves it: the wait port returns at once, device workers leave memory alone.
    // (A restored VM is always started so: assemble_restore; its restore resumes it.)
    wait_port_->set_held(true);
    pause_virtio(true);
  }
  // Every VcpuThread exists before the first one runs: a guest that ends at once makes end()
  // walk threads_ from a vCPU thread, which must not see the vector grow under it.
  for (auto& vcpu : vcpus_) {
    VcpuExitHandler& handler = *this;  // private base: converted here, where it is accessible
    threads_.push_back(std::make_unique<VcpuThread>(*vcpu, handler));
  }
  for (auto& thread : threads_) {
    Status spawned = thread->spawn(paused);
    if (!spawned.ok()) {
      // Leave nothing running behind a failed start; the VM counts as ended (not stopped),
      // so stop() — called by the caller or at collection — still releases its resources.
      for (auto& t : threads_) t->request_stop();
      for (auto& t : threads_) t->join();
      std::lock_guard lock(state_mutex_);
      state_ = VmState::kExited;
      ended_ = true;
      return spawned.error();
    }
  }
  std::lock_guard lock(state_mutex_);
  if (state_ == VmState::kCreated) state_ = ended_ ? VmState::kExited : paused ? VmState::kPaused : VmState::kRunning;
  return {};
}

Status Vm::pause() {
  // The control mutex is held to ask, and again to settle, but not while waiting for the
  // vCPUs: a stop() (or anything else that takes it) meanwhile is not held up, and ends the
  // wait (a stopping vCPU counts as settled).
  std::vector<VcpuThread*> threads;
  {
    std::lock_guard control(control_mutex_);
    {
      std::lock_guard lock(state_mutex_);
      if (state_ == VmState::kPaused) return {};
      if (state_ != VmState::kRunning) {
        return plain_error("EBUSY", std::string("cannot pause a VM that is ") + vm_state_name(state_));
      }
    }
    // Unblock a vCPU parked on the wait port first, so it reaches its mailbox.
    wait_port_->set_held(true);
    {
      // Serialised with vCPU 0 letting the other vCPUs go after a restore (complete_restore).
      std::lock_guard restore(restore_mutex_);
      for (auto& t : threads_) t->request_pause();
    }
    for (auto& t : threads_) threads.push_back(t.get());
    pausers_++;
  }
  // The VcpuThread objects stay alive while pausers_ > 0 (stop() waits for it to drop).
  for (VcpuThread* t : threads) t->wait_paused_or_finished();
  std::unique_lock control(control_mutex_);
  pausers_--;
  pausers_done_.notify_all();
  if (stopping_) return plain_error("EBUSY", "the VM was stopped while pausing");
  {
    std::lock_guard lock(state_mutex_);
    if (state_ != VmState::kRunning) {
      if (state_ == VmState::kPaused) return {};
      return plain_error("EBUSY", std::string("the VM ended while pausing (it is ") + vm_state_name(state_) + ")");
    }
  }
  pause_virtio(true);  // device workers leave guest memory alone too (snapshots need that)
  std::lock_guard lock(state_mutex_);
  if (state_ == VmState::kRunning) state_ = VmState::kPaused;
  return {};
}

Status Vm::resume() {
  std::lock_guard control(control_mutex_);
  if (pausers_ > 0) return plain_error("EBUSY", "cannot resume a VM while a pause is in progress");
  {
    std::lock_guard restore(restore_mutex_);
    if (restore_failed_) return plain_error("EBADSNAPSHOT", "cannot resume: the restore could not be finished");
  }
  {
    // Checked and set at once: a vCPU ending the VM meanwhile must not be overwritten.
    std::lock_guard lock(state_mutex_);
    if (state_ == VmState::kRunning) return {};
    if (state_ != VmState::kPaused) {
      return plain_error("EBUSY", std::string("cannot resume a VM that is ") + vm_state_name(state_));
    }
    state_ = VmState::kRunning;
  }
  // A restore whose time state is still to load (resume_restore): only vCPU 0 goes; it loads
  // the state, then lets the devices and the other vCPUs go (complete_restore). Nothing else
  // runs the guest or raises an interrupt before.
  const bool restoring = restore_pending_.load(std::memory_order_acquire);
  if (!restoring) release_virtio();
  wait_port_->set_held(false);
  if (restoring) {
    if (!threads_.empty()) threads_.front()->request_resume();
  } else {
    for (auto& t : threads_) t->request_resume();
  }
  return {};
}

bool Vm::vcpu_resumed(uint32_t vcpu_index) {
  // vCPU thread. A restore resumed with its time state still to load (resume_restore): only
  // vCPU 0 was let go; it loads the state, then lets the devices and the other vCPUs go.
  if (vcpu_index == 0 && restore_pending_.load(std::memory_order_acquire)) {
    Status completed = complete_restore(/*release=*/true);
    if (!completed.ok()) {
      vcpu_ended(0, "internal-error", "the restore could not be finished: " + completed.error().message);
      return false;
    }
  }
  // The device workers look at their queues again (doorbells that rang while paused were
  // dropped); done here, before the guest runs, instead of on the resuming thread.
  if (vcpu_index != 0 || !devices_need_wake_.exchange(false)) return true;
  std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
  if (set) set->wake_all();
  return true;
}

void Vm::stop() {
  std::unique_lock control(control_mutex_);
  {
    std::lock_guard lock(state_mutex_);
    if (state_ == VmState::kStopped) return;
  }
  stopping_ = true;
  if (wait_port_) wait_port_->set_held(true);
  // Devices first: work in progress gives up at its next step, so a vCPU waiting on a
  // device's register (its mutex) gets through at once and the joins below are short.
  {
    std::shared_ptr<virtio::DeviceManager> set = virtio_devices();
    if (set) set->request_stop();
  }
  for (auto& t : threads_) t->request_stop();
  for (auto& t : threads_) t->join();
  // A pause() waiting for the vCPUs (they are finished now) lets go of them first.
  pausers_done_.wait(control, [this] { return pausers_ == 0; });
  // Release the kernel resources now rather than when the JS handle is collected: a stopped
  // VM holds no fds, threads or guest memory (the garbage collector may run much later).
  threads_.clear();
  coalesced_ring_ = nullptr;  // it lies in vCPU 0's run page, which goes below
  shut_down_virtio();  // device workers stop before the memory they use goes
  {
    // The vCPU fds, the VM fd and guest memory are released by the reaper (util/reaper.h):
    // closing a VM fd waits ~20 ms in the kernel, which stop() need not wait for.
    std::lock_guard lock(irq_mutex_);
    Reaper::instance().dispose(KernelObjects(std::move(memory_), std::move(kvm_vm_), std::move(vcpus_)));
    kvm_vm_ = KvmVm{};
    vcpus_.clear();
  }
  bool report = false;
  {
    std::lock_guard lock(state_mutex_);
    state_ = VmState::kStopped;
    report = !ended_;
    ended_ = true;
  }
  if (report) sink().on_exit({"stopped", 0, ""});
}

void Vm::end(VmExitInfo info) {
  // Runs on the vCPU thread that saw the end. The first reason wins; every vCPU is asked to
  // stop (this one leaves its loop right after); stop() joins them later.
  {
    std::lock_guard lock(state_mutex_);
    if (ended_) return;
    ended_ = true;
    if (state_ == VmState::kRunning || state_ == VmState::kPaused || state_ == VmState::kCreated) {
      state_ = VmState::kExited;
    }
  }
  wait_port_->set_held(true);
  for (auto& t : threads_) t->request_stop();
  sink().on_exit(info);
}

VmState Vm::state() const {
  std::lock_guard lock(state_mutex_);
  return state_;
}

size_t Vm::write_console(std::span<const uint8_t> bytes) {
  if (state() == VmState::kStopped) return 0;
  size_t accepted = serial_->enqueue_input(bytes);
  // A guest parked on the wait port (the probe) learns that input arrived; a Linux guest does
  // not read the port and gets the UART interrupt instead.
  if (accepted > 0 && config_.wait_words.console_input != 0) wait_port_->post(config_.wait_words.console_input);
  return accepted;
}

bool Vm::post_wait_word(uint32_t word) { return wait_port_->post(word); }

Result<std::vector<uint8_t>> Vm::read_guest(uint64_t address, uint64_t length) const {
  if (length > (1u << 20)) return plain_error("EINVAL", "read at most 1 MiB of guest memory at a time");
  std::lock_guard control(control_mutex_);  // stop() frees the memory under this lock
  if (!memory_) return plain_error("EBUSY", "the VM is stopped; its memory is gone");
  std::vector<uint8_t> bytes(length);
  NV_TRY(memory_->read(address, bytes));
  return bytes;
}

uint64_t Vm::generation() const { return generation_ ? generation_->value() : 0; }

Status Vm::publish_generation() {
  const uint64_t address = generation_->address();
  if (address == 0) return {};
  Status written = memory_->write_obj(address, generation_->value());
  if (!written.ok()) return plain_error("EINVAL", "the VM generation address " + hex(address) + " is not in guest RAM");
  return {};
}

void Vm::pio_read(uint16_t port, std::span<uint8_t> data) { pio_bus_.read(port, data); }
void Vm::pio_write(uint16_t port, std::span<const uint8_t> data) { pio_bus_.write(port, data); }
void Vm::mmio_read(uint64_t address, std::span<uint8_t> data) { mmio_bus_.read(address, data); }
void Vm::mmio_write(uint64_t address, std::span<const uint8_t> data) { mmio_bus_.write(address, data); }

namespace {
// The coalesced ring as the kernel lays it out (uapi kvm_coalesced_mmio_ring): two u32 indexes,
// then 24-byte entries from offset 8. Spelled out here because a C++ compiler places the
// uapi struct's flexible array at offset 16 (see kvm/kvm_abi.h for the same trap elsewhere).
struct CoalescedEntry {
  uint64_t phys_addr;
  uint32_t len;
  uint32_t pio;
  uint8_t data[8];
};
static_assert(sizeof(CoalescedEntry) == 24);
constexpr size_t kCoalescedEntriesOffset = 8;
constexpr uint32_t kCoalescedMax = (4096 - kCoalescedEntriesOffset) / sizeof(CoalescedEntry);
}  // namespace

void Vm::drain_buffered_writes() {
  if (coalesced_ring_ == nullptr) return;
  std::lock_guard lock(coalesced_mutex_);
  auto* base = reinterpret_cast<uint8_t*>(coalesced_ring_);
  auto* first_index = reinterpret_cast<uint32_t*>(base);
  auto* last_index = reinterpret_cast<uint32_t*>(base + 4);
  auto* entries = reinterpret_cast<const CoalescedEntry*>(base + kCoalescedEntriesOffset);
  // `last` is the kernel's, `first` ours; both are bounded before use.
  uint32_t first = __atomic_load_n(first_index, __ATOMIC_ACQUIRE) % kCoalescedMax;
  const uint32_t last = __atomic_load_n(last_index, __ATOMIC_ACQUIRE) % kCoalescedMax;
  while (first != last) {
    const CoalescedEntry& entry = entries[first];
    const uint32_t len = std::min<uint32_t>(entry.len, sizeof entry.data);
    if (entry.pio) pio_bus_.write(static_cast<uint16_t>(entry.phys_addr), std::span<const uint8_t>(entry.data, len));
    first = (first + 1) % kCoalescedMax;
    __atomic_store_n(first_index, first, __ATOMIC_RELEASE);
  }
}

void Vm::vcpu_ended(uint32_t vcpu_index, const std::string& reason, const std::string& detail) {
  end({reason, 0, "vCPU " + std::to_string(vcpu_index) + ": " + detail});
}

}  // namespace nodevisor::vmm
