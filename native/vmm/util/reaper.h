// Where a stopped VM's kernel objects go to be released: a few "nv-reaper" threads that close
// vCPU and VM fds and unmap guest memory off the stopping caller's path.
//
// Why: closing a KVM VM fd takes ~15-25 ms here, nearly all of it waiting in the kernel
// (grace periods), not CPU (DESIGN §6). A stop() that waited for it would cap start/stop
// cycles at ~50/s; handed to these threads, the closes overlap each other and stop() returns
// once the vCPUs and devices are stopped.
//
// Bounded: at most kMaxPending batches wait; beyond that `dispose` destroys the batch on the
// caller's thread (back-pressure instead of unbounded memory and fds). `drain` waits until
// everything handed over is released: the addon calls it when a Node environment shuts down,
// and the process-wide instance drains again when the process exits.
//
// Threads: `dispose` and `drain` from any thread; the batches are destroyed on reaper threads,
// which touch nothing else.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace nodevisor::vmm {

class Reaper {
 public:
  static constexpr size_t kMaxPending = 256;
  static constexpr size_t kThreads = 8;

  // The process-wide reaper (its threads start on first use).
  static Reaper& instance();

  // Takes ownership of `remains` and destroys it on a reaper thread (or here, when full).
  template <typename T>
  void dispose(T remains) {
    push(std::make_unique<Holder<T>>(std::move(remains)));
  }

  // Waits until every batch handed over so far has been destroyed.
  void drain();

  ~Reaper();

 private:
  struct Batch {
    virtual ~Batch() = default;
  };
  template <typename T>
  struct Holder final : Batch {
    explicit Holder(T v) : value(std::move(v)) {}
    T value;
  };

  Reaper() = default;
  void push(std::unique_ptr<Batch> batch);
  void run();

  std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable idle_;
  std::deque<std::unique_ptr<Batch>> pending_;
  size_t busy_ = 0;  // batches being destroyed right now
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace nodevisor::vmm
