#include "addon/vm_events.h"

#include <optional>
#include <utility>

namespace nodevisor::addon {

void VmEventQueue::push_locked_and_wake(std::unique_lock<std::mutex>& lock) {
  (void)lock;
  if (wake_pending_ || closed_) return;
  wake_pending_ = true;
  // No data: the JS callback drains the queue. Under the mutex, so close() on the JS thread
  // (then Release) can never race a call. Non-blocking: the TSFN queue is unbounded and this
  // is the only call in flight. Fails only while the environment shuts down, when nobody is
  // left to see the event.
  (void)tsfn_.NonBlockingCall(this, &VmEventQueue::deliver);
}

void VmEventQueue::on_console_output(uint8_t byte) {
  std::unique_lock lock(mutex_);
  if (closed_) return;
  if (console_bytes_ >= kMaxQueuedConsoleBytes) {
    drops_.console_bytes++;
    return;
  }
  if (!events_.empty() && events_.back().kind == VmEvent::Kind::kConsole) {
    events_.back().bytes.push_back(byte);
  } else if (bounded_events_ >= kMaxQueuedEvents) {
    drops_.console_bytes++;
    return;
  } else {
    VmEvent event{VmEvent::Kind::kConsole, {byte}, 0, 0, {}};
    events_.push_back(std::move(event));
    bounded_events_++;
  }
  console_bytes_++;
  push_locked_and_wake(lock);
}

void VmEventQueue::on_phase(uint8_t code, uint64_t ns_since_start) {
  std::unique_lock lock(mutex_);
  if (closed_) return;
  // The same code again, right after itself: one phase (the first stamp) tells as much.
  if ((!events_.empty() && events_.back().kind == VmEvent::Kind::kPhase && events_.back().code == code) ||
      bounded_events_ >= kMaxQueuedEvents) {
    drops_.phases++;
    return;
  }
  events_.push_back(VmEvent{VmEvent::Kind::kPhase, {}, code, ns_since_start, {}});
  bounded_events_++;
  push_locked_and_wake(lock);
}

void VmEventQueue::on_exit(const vmm::VmExitInfo& exit) {
  std::unique_lock lock(mutex_);
  if (closed_) return;
  events_.push_back(VmEvent{VmEvent::Kind::kExit, {}, 0, 0, exit});
  push_locked_and_wake(lock);
}

void VmEventQueue::push_flag(VmEvent::Kind kind, bool& pending) {
  std::unique_lock lock(mutex_);
  if (pending || closed_) return;
  pending = true;
  events_.push_back(VmEvent{kind, {}, 0, 0, {}});
  push_locked_and_wake(lock);
}

void VmEventQueue::on_agent_readable() { push_flag(VmEvent::Kind::kAgentReadable, readable_pending_); }
void VmEventQueue::on_agent_writable() { push_flag(VmEvent::Kind::kAgentWritable, writable_pending_); }

std::vector<VmEvent> VmEventQueue::drain() {
  std::lock_guard lock(mutex_);
  wake_pending_ = false;
  readable_pending_ = writable_pending_ = false;
  bounded_events_ = 0;
  console_bytes_ = 0;
  return std::exchange(events_, {});
}

VmEventDrops VmEventQueue::drops() {
  std::lock_guard lock(mutex_);
  return drops_;
}

void VmEventQueue::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  events_.clear();
}

void VmEventQueue::deliver(Napi::Env env, Napi::Function on_event, VmEventQueue* queue) {
  if (env == nullptr || on_event.IsEmpty()) return;  // the environment is shutting down
  // A listener that throws must not cost the events after it (an 'exit' lost would leave the
  // Vm believing it runs): deliver every event, then rethrow the first error.
  std::optional<Napi::Error> first_error;
  for (VmEvent& event : queue->drain()) {
    try {
      deliver_one(env, on_event, queue, event);
    } catch (const Napi::Error& err) {
      if (!first_error) first_error.emplace(err);
    }
  }
  if (first_error) throw *first_error;
}

void VmEventQueue::deliver_one(Napi::Env env, Napi::Function on_event, VmEventQueue* queue, VmEvent& event) {
  {
    switch (event.kind) {
      case VmEvent::Kind::kConsole:
        on_event.Call({Napi::String::New(env, "console"),
                       Napi::Buffer<uint8_t>::Copy(env, event.bytes.data(), event.bytes.size())});
        break;
      case VmEvent::Kind::kPhase: {
        Napi::Object phase = Napi::Object::New(env);
        phase.Set("code", event.code);
        phase.Set("ns", static_cast<double>(event.ns));
        on_event.Call({Napi::String::New(env, "phase"), phase});
        break;
      }
      case VmEvent::Kind::kExit: {
        Napi::Object exit = Napi::Object::New(env);
        exit.Set("reason", event.exit.reason);
        exit.Set("code", event.exit.code);
        if (!event.exit.detail.empty()) exit.Set("detail", event.exit.detail);
        const VmEventDrops drops = queue->drops();
        exit.Set("droppedPhases", static_cast<double>(drops.phases));
        exit.Set("droppedConsoleBytes", static_cast<double>(drops.console_bytes));
        // The VM no longer produces events: let the process exit if nothing else runs.
        queue->tsfn().Unref(env);
        on_event.Call({Napi::String::New(env, "exit"), exit});
        break;
      }
      case VmEvent::Kind::kAgentReadable:
        on_event.Call({Napi::String::New(env, "agent-readable"), env.Undefined()});
        break;
      case VmEvent::Kind::kAgentWritable:
        on_event.Call({Napi::String::New(env, "agent-writable"), env.Undefined()});
        break;
    }
  }
}

}  // namespace nodevisor::addon
