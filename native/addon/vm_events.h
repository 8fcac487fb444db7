// The one event channel of a VM to JS: vCPU threads (and the thread that stops the VM) queue
// console bytes, phase stamps and the exit; one Napi::ThreadSafeFunction per VM wakes the JS
// thread, which drains the queue in order. Consecutive console bytes are merged, and at most
// one wake-up is in flight, so a chatty guest costs one JS call per batch, not per byte.
//
// The guest decides how fast console bytes and phases come (`rep outsb` to port 0x80 is one
// exit per page), and JS may be busy: the queue is bounded. At most kMaxQueuedEvents console
// chunks and phases, and kMaxQueuedConsoleBytes console bytes, wait at a time; a phase equal
// to the one queued just before it is merged into it; what does not fit is dropped and
// counted, and the counts go out with the 'exit' event (droppedPhases, droppedConsoleBytes).
// The exit and the agent-console signals are never dropped.
//
// Threads: `on_*` on any thread (never touching N-API beyond NonBlockingCall, made under the
// queue mutex so `close` can stop it for good); `drain`, `close` on the JS thread only.
#pragma once

#include <napi.h>

#include <mutex>
#include <string>
#include <vector>

#include "vmm/vm.h"

namespace nodevisor::addon {

struct VmEvent {
  enum class Kind { kConsole, kPhase, kExit, kAgentReadable, kAgentWritable } kind;
  std::vector<uint8_t> bytes;  // console
  uint8_t code = 0;            // phase code
  uint64_t ns = 0;             // phase time
  vmm::VmExitInfo exit;        // exit
};

inline constexpr size_t kMaxQueuedEvents = 4096;
inline constexpr size_t kMaxQueuedConsoleBytes = 1 << 20;

struct VmEventDrops {
  uint64_t phases = 0;
  uint64_t console_bytes = 0;
};

class VmEventQueue final : public vmm::VmEventSink {
 public:
  // JS thread. `tsfn` must call `drain` on the JS thread.
  void attach(Napi::ThreadSafeFunction tsfn) { tsfn_ = std::move(tsfn); }
  Napi::ThreadSafeFunction& tsfn() { return tsfn_; }

  void on_console_output(uint8_t byte) override;
  void on_phase(uint8_t code, uint64_t ns_since_start) override;
  void on_exit(const vmm::VmExitInfo& exit) override;
  // Device worker threads: the agent console has output / room for input. Coalesced: at most
  // one of each waits in the queue.
  void on_agent_readable() override;
  void on_agent_writable() override;

  // JS thread: takes every queued event.
  std::vector<VmEvent> drain();
  // What was dropped so far. Any thread.
  VmEventDrops drops();
  // JS thread, before the TSFN is released: nothing is queued or signalled after this.
  void close();

 private:
  void push_locked_and_wake(std::unique_lock<std::mutex>& lock);
  void push_flag(VmEvent::Kind kind, bool& pending);
  // JS thread: the TSFN callback; calls onEvent(kind, payload) per queued event.
  static void deliver(Napi::Env env, Napi::Function on_event, VmEventQueue* queue);
  static void deliver_one(Napi::Env env, Napi::Function on_event, VmEventQueue* queue, VmEvent& event);

  std::mutex mutex_;
  std::vector<VmEvent> events_;
  size_t bounded_events_ = 0;  // console chunks and phases in events_
  size_t console_bytes_ = 0;   // console bytes in events_
  VmEventDrops drops_;
  bool closed_ = false;
  bool wake_pending_ = false;
  bool readable_pending_ = false;  // a kAgentReadable is queued
  bool writable_pending_ = false;  // a kAgentWritable is queued
  Napi::ThreadSafeFunction tsfn_;
};

}  // namespace nodevisor::addon
