#include "vmm/util/reaper.h"

#include <system_error>

#include "vmm/util/background_thread.h"

namespace nodevisor::vmm {

Reaper& Reaper::instance() {
  // Never destroyed before exit; its destructor (at exit) drains and joins the threads.
  static Reaper reaper;
  return reaper;
}

void Reaper::run_later(std::function<void()> work) {
  push(std::make_unique<Holder<Deferred>>(Deferred(std::move(work))), /*bounded=*/false);
}

void Reaper::push(std::unique_ptr<Batch> batch, bool bounded) {
  std::unique_lock lock(mutex_);
  if (threads_.empty() && !stopping_) {
    // Started all at once, on first use: the thread count is then flat for the process's
    // life (leak checks compare it), and no later dispose pays for a thread start.
    try {
      for (size_t i = 0; i < kThreads; ++i) threads_.push_back(start_background_thread("nv-reaper", [this] { run(); }));
    } catch (const std::system_error&) {
      // Fewer threads (or none: then every batch is released by its caller, below).
    }
  }
  if ((bounded && pending_.size() >= kMaxPending) || threads_.empty() || stopping_) {
    lock.unlock();
    batch.reset();  // behind, no thread, or exit() has begun: release (or run) it here
    return;
  }
  pending_.push_back(std::move(batch));
  lock.unlock();
  work_.notify_one();
}

void Reaper::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, and nothing left
    std::unique_ptr<Batch> batch = std::move(pending_.front());
    pending_.pop_front();
    ++busy_;
    lock.unlock();
    batch.reset();  // the slow part: closes and unmaps
    lock.lock();
    --busy_;
    if (pending_.empty() && busy_ == 0) idle_.notify_all();
  }
}

void Reaper::drain() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return pending_.empty() && busy_ == 0; });
}

Reaper::~Reaper() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  for (auto& t : threads_) t.join();  // each leaves once the queue is empty
}

}  // namespace nodevisor::vmm
