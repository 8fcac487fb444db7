#include "addon/vm_reaper.h"

#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

namespace nodevisor::addon {

namespace {

class Reaper {
 public:
  ~Reaper() {
    // exit(): every VM handed over is stopped before the process goes.
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void add(std::function<void()> stop) {
    std::unique_lock lock(mutex_);
    if (closing_ || !ensure_thread_locked()) {
      // exit() has begun (a late finalizer), or no thread could be started: nobody else
      // would run it, so stop here rather than never.
      lock.unlock();
      stop();
      return;
    }
    pending_.push_back(std::move(stop));
    lock.unlock();
    changed_.notify_all();
  }

 private:
  bool ensure_thread_locked() {
    if (thread_.joinable()) return true;
    try {
      thread_ = std::thread([this] {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        pthread_setname_np(pthread_self(), "nv-reaper");
        run();
      });
      return true;
    } catch (const std::system_error&) {
      return false;
    }
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return !pending_.empty() || closing_; });
      if (pending_.empty()) return;  // closing, and nothing left
      auto stop = std::move(pending_.front());
      pending_.pop_front();
      lock.unlock();
      stop();
      stop = nullptr;  // the VM's last reference goes here too, off the JS thread
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> pending_;
  bool closing_ = false;
  std::thread thread_;
};

Reaper& reaper() {
  static Reaper instance;
  return instance;
}

}  // namespace

void stop_later(std::function<void()> stop) { reaper().add(std::move(stop)); }

}  // namespace nodevisor::addon
