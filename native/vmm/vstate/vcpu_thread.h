// One thread per vCPU running the KVM_RUN loop, driven through a mailbox (Firecracker's
// Running / Paused / Finished): other threads post a request (run, pause, stop), then kick
// the vCPU out of KVM_RUN with `immediate_exit` plus a signal whose handler does nothing and
// is installed without SA_RESTART, so KVM_RUN returns EINTR. Never pthread_cancel: the thread
// always leaves at the top of its loop, with no lock held and the vCPU in a known state.
//
// Threads: the public methods run on a controlling thread (libuv worker or JS thread); the
// loop runs on the vCPU thread, named "nv-vcpu<N>".
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <pthread.h>
#include <sched.h>

#include <string>

#include "vmm/kvm/kvm_vcpu.h"
#include "sys/result.h"
#include "vmm/vstate/vcpu_exit_handler.h"

namespace nodevisor::vmm {

enum class VcpuRunState { kIdle, kRunning, kPaused, kFinished };

class VcpuThread {
 public:
  VcpuThread(KvmVcpu& vcpu, VcpuExitHandler& handler) : vcpu_(vcpu), handler_(handler) {}
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;
  ~VcpuThread();  // stops and joins if still running

  // Starts the thread, running the guest at once — or, with `paused`, parked in its mailbox
  // until request_resume (a VM restored from a snapshot with { paused: true }).
  Status spawn(bool paused = false);
  // Requests; each returns at once. `wait_paused_or_finished` (after a pause) and `join`
  // (after a stop) wait until the thread acted on them.
  void request_pause();
  // Wakes a paused thread. It first runs on another CPU than the caller's (when its CPU set
  // has one): woken where the caller runs, it would preempt the caller — the JS thread
  // handing a VM over — for the guest's first steps. It widens its CPU set back itself.
  void request_resume();
  // The latest request is to run (not pause or stop). Any thread.
  bool run_requested() const;
  void request_stop();
  // Waits until the thread is paused (after request_pause) or finished.
  void wait_paused_or_finished();
  // Waits for the thread to end and joins it. Safe to call more than once.
  void join();

  VcpuRunState state() const;

 private:
  enum class Request { kRun, kPause, kStop };
  static void* thread_main(void* self);
  void run_loop();
  // Handles one exit; returns false when the vCPU must stop.
  bool handle_exit();
  std::string where() const;
  void kick();
  void set_state(VcpuRunState state);
  // Both with mutex_ held. On the caller of request_resume: narrows this (parked) thread's
  // CPU set to its CPUs other than the caller's. On the vCPU thread, once it woke: restores
  // the set it had.
  void steer_away_from_caller();
  void restore_cpus();

  KvmVcpu& vcpu_;
  VcpuExitHandler& handler_;
  pthread_t thread_{};
  // Atomic: a sibling vCPU thread ending the VM may kick this one while a controller joins.
  std::atomic<bool> spawned_{false};
  std::atomic<bool> joined_{false};

  mutable std::mutex mutex_;
  std::mutex join_mutex_;  // kick() and join() exclusive: no signal to a joined thread
  std::condition_variable changed_;
  Request request_ = Request::kRun;
  VcpuRunState state_ = VcpuRunState::kIdle;
  // Spawned paused and not yet through its mailbox: a resume that comes before the thread
  // first parks is still a resume (vcpu_resumed), though the thread never waited. mutex_.
  bool paused_at_spawn_ = false;
  // The CPU set the thread asks for again after steer_away_from_caller narrowed it (its set
  // before, or every CPU when that held every online one); `steered_` says it is narrowed.
  // mutex_.
  cpu_set_t home_cpus_{};
  bool steered_ = false;
};

// Installs the no-op kick signal handler once per process. Returns an error if it cannot.
Status install_vcpu_kick_signal();

}  // namespace nodevisor::vmm
