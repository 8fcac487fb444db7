#include "vmm/vstate/vcpu_thread.h"

#include <linux/kvm.h>
#include <signal.h>
#include <sys/sysinfo.h>

#include <cstring>
#include <mutex>
#include <string>

namespace nodevisor::vmm {

namespace {

// SIGRTMIN+0 is what Firecracker uses; glibc's own real-time signals sit below SIGRTMIN.
int kick_signal() { return SIGRTMIN; }

void on_kick_signal(int) {
  // Nothing to do: its only purpose is to make a blocking KVM_RUN return EINTR.
}

}  // namespace

Status install_vcpu_kick_signal() {
  static std::once_flag once;
  static int failure = 0;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = on_kick_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    if (sigaction(kick_signal(), &action, nullptr) != 0) failure = errno;
  });
  if (failure != 0) return sys_error(failure, "sigaction", "cannot install the vCPU kick signal handler");
  return {};
}

VcpuThread::~VcpuThread() {
  request_stop();
  join();
}

Status VcpuThread::spawn(bool paused) {
  NV_TRY(install_vcpu_kick_signal());
  {
    std::lock_guard lock(mutex_);
    // A stop asked before the thread exists (the guest ended on another vCPU) still holds.
    if (request_ != Request::kStop) request_ = paused ? Request::kPause : Request::kRun;
    paused_at_spawn_ = paused;
    state_ = VcpuRunState::kRunning;
  }
  // Small stack: the loop needs little, and hundreds of VMs may live in one process.
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int rc = pthread_create(&thread_, &attr, &VcpuThread::thread_main, this);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    set_state(VcpuRunState::kFinished);
    return sys_error(rc, "pthread_create", "cannot start vCPU thread " + std::to_string(vcpu_.index()));
  }
  spawned_ = true;
  // Named here, not in the thread, so the name is set by the time spawn() returns.
  char name[16];
  snprintf(name, sizeof name, "nv-vcpu%u", vcpu_.index());
  pthread_setname_np(thread_, name);
  return {};
}

void* VcpuThread::thread_main(void* self) {
  auto* thread = static_cast<VcpuThread*>(self);
  // The creating thread's mask is inherited; the kick must get through here.
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
  thread->run_loop();
  return nullptr;
}

void VcpuThread::set_state(VcpuRunState state) {
  {
    std::lock_guard lock(mutex_);
    state_ = state;
  }
  changed_.notify_all();
}

VcpuRunState VcpuThread::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void VcpuThread::kick() {
  // Order matters: the request is already in the mailbox, then immediate_exit, then the signal.
  // If the thread is between its mailbox check and KVM_RUN, immediate_exit makes KVM_RUN
  // return EINTR at once; if it is inside KVM_RUN, the signal does.
  vcpu_.request_immediate_exit();
  // The thread itself (ending the VM from its own exit) needs no signal, and must not wait
  // for join_mutex_: a stopping thread may hold it while joining this very thread.
  if (spawned_ && pthread_equal(pthread_self(), thread_)) return;
  // Under the mutex join() also takes: never signal a thread that was joined (its pthread_t
  // may name another thread by then).
  std::lock_guard lock(join_mutex_);
  if (spawned_ && !joined_) pthread_kill(thread_, kick_signal());
}

void VcpuThread::request_pause() {
  {
    std::lock_guard lock(mutex_);
    if (state_ == VcpuRunState::kFinished || request_ == Request::kStop) return;
    request_ = Request::kPause;
  }
  changed_.notify_all();
  kick();
}

void VcpuThread::request_resume() {
  {
    std::lock_guard lock(mutex_);
    if (request_ != Request::kPause) return;
    // Before the request is posted: the thread reads home_cpus_ only after it saw kRun.
    steer_away_from_caller();
    request_ = Request::kRun;
  }
  changed_.notify_all();
}

void VcpuThread::steer_away_from_caller() {
  // Caller's thread (the JS thread for Vm::resume), mutex_ held. request_ is kPause, so no
  // stop was asked and the thread is not joined: thread_ names it (a thread that already
  // ended makes the calls fail, harmlessly). Two syscalls, a few µs.
  // Measured on this project's 2-CPU machine: without this, the woken vCPU thread lands on
  // the caller's CPU in about one hand-over in five and runs the guest there for ~50 µs
  // before the caller goes on (the scheduler often skips looking for an idle CPU); with it,
  // hand-over p90 / p99 went from 120–165 / 240–260 µs to 86–92 / 109–115 µs.
  // steered_ still set means the last widening failed: home_cpus_ is kept until one works.
  if (steered_ || !spawned_ || state_ == VcpuRunState::kFinished) return;
  const int here = sched_getcpu();
  if (here < 0) return;
  cpu_set_t home;
  if (pthread_getaffinity_np(thread_, sizeof home, &home) != 0) return;
  if (!CPU_ISSET(here, &home) || CPU_COUNT(&home) < 2) return;
  cpu_set_t elsewhere = home;
  CPU_CLR(here, &elsewhere);
  if (pthread_setaffinity_np(thread_, sizeof elsewhere, &elsewhere) != 0) return;
  // What the thread asks for when it widens its set again. The kernel keeps an asked-for set
  // and follows a cgroup cpuset only within it: a thread that may use every online CPU (no
  // one restricted it) asks for every CPU, so a cpuset that grows later still reaches it.
  // A set someone narrowed (taskset, a smaller cpuset) is asked for as it was.
  static const int online = get_nprocs();
  if (CPU_COUNT(&home) >= online) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &home_cpus_);
  } else {
    home_cpus_ = home;
  }
  steered_ = true;
}

void VcpuThread::restore_cpus() {
  // vCPU thread, mutex_ held, right after it woke: widening the set moves nothing, it only
  // lets the scheduler place this thread anywhere again. Under mutex_, so a resume right
  // after a pause steers from the widened set. A failure (the cpuset changed meanwhile)
  // leaves the narrower set, which still runs the guest, and steered_ set: the next wake
  // tries again, and no resume steers from the narrowed set.
  if (!steered_) return;
  if (pthread_setaffinity_np(pthread_self(), sizeof home_cpus_, &home_cpus_) == 0) steered_ = false;
}

bool VcpuThread::run_requested() const {
  std::lock_guard lock(mutex_);
  return request_ == Request::kRun;
}

void VcpuThread::request_stop() {
  {
    std::lock_guard lock(mutex_);
    request_ = Request::kStop;
  }
  changed_.notify_all();
  if (spawned_) kick();
}

void VcpuThread::wait_paused_or_finished() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] {
    return state_ == VcpuRunState::kFinished || state_ == VcpuRunState::kPaused || request_ == Request::kStop ||
           request_ == Request::kRun;
  });
}

void VcpuThread::join() {
  std::lock_guard lock(join_mutex_);
  if (!spawned_ || joined_) return;
  pthread_join(thread_, nullptr);
  joined_ = true;
}

void VcpuThread::run_loop() {
  // True after an I/O or MMIO exit: KVM finishes that instruction (stores an `in` result,
  // advances RIP) only on the next KVM_RUN.
  bool exit_needs_completion = false;
  for (;;) {
    bool leaving_guest;
    {
      std::lock_guard lock(mutex_);
      leaving_guest = request_ != Request::kRun;
    }
    if (leaving_guest && exit_needs_completion) {
      // Before pausing or stopping, re-enter once with immediate_exit so the in-flight
      // instruction completes and saved registers are consistent (Cloud Hypervisor does the
      // same). KVM returns EINTR without running guest code.
      vcpu_.request_immediate_exit();
      (void)vcpu_.run();
      vcpu_.clear_immediate_exit();
      handler_.drain_buffered_writes();
    }
    exit_needs_completion = false;
    // Mailbox: act on the latest request before (re-)entering the guest.
    bool resumed = false;
    {
      std::unique_lock lock(mutex_);
      if (request_ == Request::kPause) {
        state_ = VcpuRunState::kPaused;
        changed_.notify_all();
        changed_.wait(lock, [this] { return request_ != Request::kPause; });
        resumed = true;
      } else if (paused_at_spawn_) {
        resumed = true;  // resumed before this thread first got here
      }
      paused_at_spawn_ = false;
      if (resumed) restore_cpus();
      if (request_ == Request::kStop) break;
      state_ = VcpuRunState::kRunning;
    }
    if (resumed && !handler_.vcpu_resumed(vcpu_.index())) break;
    const int rc = vcpu_.run();
    handler_.drain_buffered_writes();
    if (rc == -EINTR || rc == -EAGAIN) {
      // Kicked (or a stray signal). Clear immediate_exit *before* reading the mailbox so a
      // kick that lands after the read still makes the next KVM_RUN return at once.
      vcpu_.clear_immediate_exit();
      continue;
    }
    if (rc < 0) {
      handler_.vcpu_ended(vcpu_.index(), "internal-error", std::string("KVM_RUN failed: ") + std::strerror(-rc));
      break;
    }
    if (!handle_exit()) break;
    const uint32_t reason = vcpu_.run_page()->exit_reason;
    exit_needs_completion = reason == KVM_EXIT_IO || reason == KVM_EXIT_MMIO;
  }
  handler_.drain_buffered_writes();  // what the guest wrote last is not lost at stop
  set_state(VcpuRunState::kFinished);
}

std::string VcpuThread::where() const {
  // Where the guest was, for the exit reason: enough to find the instruction in a disassembly.
  kvm_regs regs{};
  kvm_sregs sregs{};
  if (!vcpu_.get_regs(regs).ok() || !vcpu_.get_sregs(sregs).ok()) return {};
  char text[200];
  snprintf(text, sizeof text, " at rip=0x%llx cs=0x%x cr0=0x%llx cr4=0x%llx efer=0x%llx rsp=0x%llx rflags=0x%llx",
           static_cast<unsigned long long>(regs.rip), sregs.cs.selector, static_cast<unsigned long long>(sregs.cr0),
           static_cast<unsigned long long>(sregs.cr4), static_cast<unsigned long long>(sregs.efer),
           static_cast<unsigned long long>(regs.rsp), static_cast<unsigned long long>(regs.rflags));
  return text;
}

bool VcpuThread::handle_exit() {
  kvm_run* run = vcpu_.run_page();
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      const auto& io = run->io;
      // The data area is in the shared page; KVM sets the offset, we still bound it.
      if (io.size != 1 && io.size != 2 && io.size != 4) {
        handler_.vcpu_ended(vcpu_.index(), "internal-error", "port I/O of size " + std::to_string(io.size));
        return false;
      }
      uint8_t* base = reinterpret_cast<uint8_t*>(run);
      for (uint32_t i = 0; i < io.count; ++i) {
        uint8_t* data = base + io.data_offset + static_cast<uint64_t>(i) * io.size;
        if (io.direction == KVM_EXIT_IO_OUT) {
          handler_.pio_write(io.port, std::span<const uint8_t>(data, io.size));
        } else {
          handler_.pio_read(io.port, std::span<uint8_t>(data, io.size));
        }
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      auto& mmio = run->mmio;
      const uint32_t length = std::min<uint32_t>(mmio.len, sizeof mmio.data);
      if (mmio.is_write) {
        handler_.mmio_write(mmio.phys_addr, std::span<const uint8_t>(mmio.data, length));
      } else {
        handler_.mmio_read(mmio.phys_addr, std::span<uint8_t>(mmio.data, length));
      }
      return true;
    }
    case KVM_EXIT_SHUTDOWN:
      handler_.vcpu_ended(vcpu_.index(), "shutdown", "the guest shut down (triple fault)" + where());
      return false;
    case KVM_EXIT_HLT:
      handler_.vcpu_ended(vcpu_.index(), "halt", "the guest halted with interrupts off");
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_RESET:
          handler_.vcpu_ended(vcpu_.index(), "reset", "the guest requested a reset");
          break;
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          handler_.vcpu_ended(vcpu_.index(), "poweroff", "the guest powered off");
          break;
        default:
          handler_.vcpu_ended(vcpu_.index(), "crash",
                               "system event " + std::to_string(run->system_event.type));
          break;
      }
      return false;
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string detail = "KVM internal error, suberror " + std::to_string(run->internal.suberror);
      if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) detail += " (instruction emulation failed)";
      detail += where();
      handler_.vcpu_ended(vcpu_.index(), "internal-error", detail);
      return false;
    }
    case KVM_EXIT_FAIL_ENTRY:
      handler_.vcpu_ended(vcpu_.index(), "internal-error",
                           "VM entry failed, reason " +
                               std::to_string(run->fail_entry.hardware_entry_failure_reason));
      return false;
    case KVM_EXIT_INTR:
      return true;
    default:
      handler_.vcpu_ended(vcpu_.index(), "internal-error", "unexpected KVM exit " + std::to_string(run->exit_reason));
      return false;
  }
}

}  // namespace nodevisor::vmm
