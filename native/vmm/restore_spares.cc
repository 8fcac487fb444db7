#include "vmm/restore_spares.h"

#include <system_error>

#include "vmm/kvm/warm_vm.h"
#include "vmm/util/background_thread.h"
#include "vmm/util/reaper.h"

namespace nodevisor::vmm {

RestoreSpares& RestoreSpares::instance() {
  // The reaper is made first so that it is destroyed after this: a spare still held at exit
  // is stopped by ~RestoreSpares and hands its kernel objects to the reaper.
  (void)Reaper::instance();
  static RestoreSpares spares;
  return spares;
}

void RestoreSpares::prepare(const std::string& dir, const WaitPortWords& words) {
  if (!spare_vms_enabled()) return;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (!thread_.joinable()) {
      try {
        thread_ = start_background_thread("nv-restore-prep", [this] { run(); });
      } catch (const std::system_error&) {
        return;  // no thread to spare: restores build their own
      }
    }
    wanted_ = dir;
    wanted_words_ = words;
  }
  wanted_changed_.notify_one();
}

std::unique_ptr<Vm> RestoreSpares::take(const std::string& dir, const WaitPortWords& words) {
  std::unique_ptr<Spare> out;
  {
    std::lock_guard lock(mutex_);
    if (spare_ && spare_->dir == dir && spare_->words == words) {
      out = std::move(spare_);
      if (wanted_ == dir) wanted_.clear();  // one prepare, one spare: the next is asked for again
    }
  }
  if (!out) return nullptr;
  // Still the files it was made from? A snapshot rewritten since is restored the long way
  // (and checked again); the VM made from the old one is stopped (its ~Vm, here).
  if (!out->opened.files_unchanged(dir)) return nullptr;
  return std::move(out->vm);
}

void RestoreSpares::forget(const std::string& dir) {
  std::unique_ptr<Spare> dropped;
  {
    std::unique_lock lock(mutex_);
    if (wanted_ == dir) wanted_.clear();
    idle_.wait(lock, [this] { return !preparing_; });
    if (spare_ && spare_->dir == dir) dropped = std::move(spare_);
  }
  // Stopped here, off the lock: its threads are joined, its kernel objects go to the reaper.
}

void RestoreSpares::drop_all() {
  std::unique_ptr<Spare> dropped;
  {
    std::unique_lock lock(mutex_);
    wanted_.clear();
    idle_.wait(lock, [this] { return !preparing_; });
    dropped = std::move(spare_);
  }
}

bool RestoreSpares::has_work() const {
  return !wanted_.empty() && !(spare_ && spare_->dir == wanted_ && spare_->words == wanted_words_);
}

void RestoreSpares::settle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return stopping_ || !thread_.joinable() || (!preparing_ && !has_work()); });
}

std::unique_ptr<RestoreSpares::Spare> RestoreSpares::make(const std::string& dir, const WaitPortWords& words) {
  auto opened = snapshot::open_snapshot(dir);
  if (!opened.ok()) return nullptr;
  auto kernel = snapshot::make_restore_kernel(*opened.value().snap, std::move(opened.value().memory), KvmVm{});
  if (!kernel.ok()) return nullptr;
  auto vm = Vm::assemble_restore(opened.value(), std::move(kernel.value()), words);
  if (!vm.ok()) return nullptr;
  return std::unique_ptr<Spare>(new Spare{dir, words, std::move(opened.value()), std::move(vm.value())});
}

void RestoreSpares::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wanted_changed_.wait(lock, [this] { return stopping_ || has_work(); });
    if (stopping_) return;
    preparing_ = true;
    const std::string dir = wanted_;
    const WaitPortWords words = wanted_words_;
    std::unique_ptr<Spare> stale = std::move(spare_);  // made for another directory (or words)
    lock.unlock();
    stale.reset();  // stopped off the lock
    std::unique_ptr<Spare> made = make(dir, words);
    lock.lock();
    if (!made) {
      if (wanted_ == dir) wanted_.clear();  // failed: the restore itself reports why
    } else if (wanted_ == dir && wanted_words_ == words && !stopping_) {
      spare_ = std::move(made);
    } else {
      lock.unlock();  // no longer wanted: stopped off the lock
      made.reset();
      lock.lock();
    }
    preparing_ = false;
    idle_.notify_all();
  }
}

RestoreSpares::~RestoreSpares() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wanted_changed_.notify_all();
  idle_.notify_all();
  if (thread_.joinable()) thread_.join();
  spare_.reset();  // its VM stopped before the reaper goes (instance() says why it is still here)
}

}  // namespace nodevisor::vmm
