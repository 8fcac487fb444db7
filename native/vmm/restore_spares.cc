#include "vmm/restore_spares.h"

#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "vmm/kvm/warm_vm.h"
#include "vmm/util/background_thread.h"
#include "vmm/util/reaper.h"

namespace nodevisor::vmm {

namespace {

// What would make a spare stale: its files written, truncated, touched, replaced, removed,
// or the directory itself moved, removed or unmounted (IN_UNMOUNT and IN_Q_OVERFLOW come
// unasked).
constexpr uint32_t kChangeEvents = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                   IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;

// Whether inotify reports every change in `dir`: on tmpfs and ramfs no other host writes.
bool reports_every_change(const std::string& dir) {
  struct statfs fs {};
  return statfs(dir.c_str(), &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
}

// `dir` is its own canonical path (absolute, no symlink, no . or ..): what inotify watches (an
// inode) and what a restore names (a path) cannot drift apart through a symlink swapped later.
// A rename or a mount over one of its ancestors still could; the factory's directory is its
// own tmpfs mount.
bool names_itself(const std::string& dir) {
  char resolved[PATH_MAX];
  if (realpath(dir.c_str(), resolved) == nullptr) return false;
  std::string trimmed = dir;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  return trimmed == resolved;
}

}  // namespace

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
      checking_++;  // forget() waits for this: the spare still maps the directory's file
    }
  }
  if (!out) return nullptr;
  // Still the files it was made from? A snapshot rewritten since is restored the long way
  // (and checked again); the VM made from the old one is stopped here, before forget() may
  // go on.
  std::unique_ptr<Vm> vm;
  if (out->opened.files_unchanged(dir)) vm = std::move(out->vm);
  out.reset();
  std::lock_guard lock(mutex_);
  if (vm) counts_.taken_after_check++;
  checking_--;
  idle_.notify_all();
  return vm;
}

std::unique_ptr<Vm> RestoreSpares::take_now(const std::string& dir, const WaitPortWords& words) {
  std::unique_ptr<Spare> out;
  {
    std::lock_guard lock(mutex_);
    if (!spare_ || spare_->dir != dir || !(spare_->words == words) || !spare_->watched) return nullptr;
    if (read_changes_locked()) {
      spare_->watched = false;  // something changed (or the watch broke): `take` compares the files
      return nullptr;
    }
    out = std::move(spare_);
    if (wanted_ == dir) wanted_.clear();  // one prepare, one spare: the next is asked for again
    counts_.taken_now++;
  }
  return std::move(out->vm);
}

RestoreSpares::Counts RestoreSpares::counts() {
  std::lock_guard lock(mutex_);
  return counts_;
}

void RestoreSpares::count_assembled() {
  std::lock_guard lock(mutex_);
  counts_.assembled++;
}

void RestoreSpares::forget(const std::string& dir) { drop(&dir); }

void RestoreSpares::drop_all() { drop(nullptr); }

void RestoreSpares::drop(const std::string* dir) {
  const auto matches = [dir](const std::string& other) { return dir == nullptr || other == *dir; };
  std::unique_ptr<Spare> dropped;
  {
    std::unique_lock lock(mutex_);
    if (matches(wanted_)) wanted_.clear();
    idle_.wait(lock, [this] { return !preparing_ && checking_ == 0; });
    if (spare_ && matches(spare_->dir)) dropped = std::move(spare_);
    if (matches(watched_dir_)) unwatch_locked();
  }
  // Stopped here, off the lock: its threads are joined, its kernel objects go to the reaper.
}

bool RestoreSpares::has_work() const {
  return !wanted_.empty() && !(spare_ && spare_->dir == wanted_ && spare_->words == wanted_words_);
}

void RestoreSpares::settle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return stopping_ || !thread_.joinable() || (!preparing_ && !has_work()); });
}

bool RestoreSpares::watch_locked(const std::string& dir) {
  if (!changes_.valid()) {
    changes_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!changes_.valid()) return false;
  }
  // Twice at most: what is reported before this is dropped; a watch the kernel removed or
  // that no longer names `dir` (moved, deleted, unmounted: read_changes_locked forgets it)
  // is made again. inotify_add_watch on an inode already watched returns its watch: the
  // path is looked up each time, so a directory replaced at `dir` gets a watch of its own.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int wd = inotify_add_watch(changes_.get(), dir.c_str(), kChangeEvents);
    if (wd < 0) {
      unwatch_locked();
      return false;
    }
    if (wd != changes_wd_) {
      unwatch_locked();
      changes_wd_ = wd;
    }
    watched_dir_ = dir;
    (void)read_changes_locked();
    if (watched_dir_ == dir) return true;
  }
  return false;
}

bool RestoreSpares::read_changes_locked() {
  bool changed = false;
  alignas(inotify_event) char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(changes_.get(), buffer, sizeof buffer);  // non-blocking
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN) changed = true;  // cannot tell: count it as a change
      return changed;
    }
    // Records the kernel wrote whole: a header, then `len` bytes of name.
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      inotify_event event;
      std::memcpy(&event, buffer + at, sizeof event);
      at += static_cast<ssize_t>(sizeof event) + event.len;
      if (event.mask & IN_Q_OVERFLOW) {  // events were lost: the watch is not trusted again
        changed = true;
        watched_dir_.clear();
      }
      if (event.wd != changes_wd_ || changes_wd_ < 0) continue;  // an earlier directory's watch
      changed = true;
      // The watched inode no longer is `dir` (moved, deleted, its filesystem unmounted, the
      // watch removed): a spare made later watches again (watch_locked).
      if (event.mask & (IN_IGNORED | IN_MOVE_SELF | IN_DELETE_SELF | IN_UNMOUNT)) watched_dir_.clear();
    }
  }
}

void RestoreSpares::unwatch_locked() {
  if (changes_wd_ >= 0) (void)inotify_rm_watch(changes_.get(), changes_wd_);
  changes_wd_ = -1;
  watched_dir_.clear();
}

std::unique_ptr<RestoreSpares::Spare> RestoreSpares::make(const std::string& dir, const WaitPortWords& words) {
  // Watched before the files are read, so that no change after this goes unseen.
  bool watched = false;
  if (reports_every_change(dir) && names_itself(dir)) {
    std::lock_guard lock(mutex_);
    watched = watch_locked(dir);
  }
  auto opened = snapshot::open_snapshot(dir);
  if (!opened.ok()) return nullptr;
  auto kernel = snapshot::make_restore_kernel(*opened.value().snap, std::move(opened.value().memory), KvmVm{});
  if (!kernel.ok()) return nullptr;
  auto vm = Vm::assemble_restore(opened.value(), std::move(kernel.value()), words);
  if (!vm.ok()) return nullptr;
  return std::unique_ptr<Spare>(new Spare{dir, words, std::move(opened.value()), std::move(vm.value()), watched});
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
