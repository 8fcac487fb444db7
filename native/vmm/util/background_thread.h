// Starting one of the VMM's own background threads (prewarm, restore prep, reapers): signals
// stay with the JS and vCPU threads, so the thread starts with all of them blocked (the mask
// is inherited from the creating thread, whose own mask is put back), and it gets a name that
// `top -H` and /proc/<pid>/task/*/comm show.
//
// Throws std::system_error like std::thread when no thread can be made (EAGAIN); callers
// carry on without it. Any thread.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace nodevisor::vmm {

template <typename Fn>
std::thread start_background_thread(const char* name, Fn&& fn) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread thread;
  try {
    thread = std::thread(std::forward<Fn>(fn));
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_setname_np(thread.native_handle(), name);  // at most 15 characters
  return thread;
}

}  // namespace nodevisor::vmm
