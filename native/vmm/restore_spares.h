// Restores made ahead of time, for a snapshot that is restored again and again (the template
// factory's).
//
// `prepare(dir, words)` has the "nv-restore-prep" thread restore `dir` as far as it can without
// knowing who will use the VM or when it runs (Vm::assemble_restore): the snapshot read and
// checked, its memory mapped MAP_PRIVATE and registered with KVM, the irqchip, the vCPUs with
// their registers, the devices with their queues and worker threads, the vCPU threads started
// and parked, a generation id of its own. The next `Vm::restore(dir)` takes that VM (`take`)
// when the files are still the ones it was made from (same inode, size and mtime), and is left
// with what depends on the moment it runs (Vm::finish_restore: timers, clock, the agent input,
// the event sink). At 128 MiB here that is ~0.1 ms instead of ~0.35 ms on the restoring
// thread, and flat in the guest's memory size (the long way grows with it).
//
// The caller chooses when the preparation runs: on these 2-core machines, preparing while a
// clone answers its first request made that request up to 2x slower, so the factory asks once
// the clone is handed over.
//
// One spare at a time, for the directory last asked for. It holds the memory file open and
// mapped, so `forget(dir)` drops it (and stops preparing) before the directory goes away: a
// tmpfs holding it could not be unmounted. NODEVISOR_WARM_VM=0 turns spares off.
//
// Threads: `prepare`, `take`, `forget` and `settle` from any thread but a vCPU's; the spare is
// built and, when it is not taken, stopped on the prep thread (or the thread that forgets it).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "vmm/snapshot/open_snapshot.h"
#include "vmm/vm.h"

namespace nodevisor::vmm {

class RestoreSpares {
 public:
  static RestoreSpares& instance();

  // Makes a spare for `dir` in the background (replacing one for another directory), with the
  // wait-port words its restore will ask for. Never blocks; a failure is silent (the restore
  // that finds no spare reports it).
  void prepare(const std::string& dir, const WaitPortWords& words);
  // The spare for `dir` when there is one made with `words` and its files are unchanged, else
  // nullptr (a stale spare is stopped). The VM is assembled and parked: Vm::finish_restore.
  // Compares the files' identity (two stat calls): a worker thread's call.
  std::unique_ptr<Vm> take(const std::string& dir, const WaitPortWords& words);
  // The same without touching a file, for the JS thread (then Vm::resume_restore): only a
  // spare on a filesystem where inotify sees every change (tmpfs, ramfs), at a path without
  // symlinks, watched since before it was read, with no change reported since. Otherwise
  // nullptr, and the spare stays for `take` to judge. Not seen: a rename of, or a mount over,
  // one of the directory's ancestors (the factory's directory is a tmpfs of its own).
  std::unique_ptr<Vm> take_now(const std::string& dir, const WaitPortWords& words);

  // How restores went in this process (for tests and diagnostics): taken by `take_now`, taken
  // by `take`, and assembled by the restore itself (no spare, or a stale one).
  struct Counts {
    uint64_t taken_now = 0;
    uint64_t taken_after_check = 0;
    uint64_t assembled = 0;
  };
  Counts counts();
  void count_assembled();
  // Drops the spare for `dir`, if any, and stops preparing them; waits for a preparation in
  // progress. The spare's kernel objects go to the reaper (Reaper::drain waits for them).
  void forget(const std::string& dir);
  // Drops whatever spare there is and stops preparing (the addon's environment is going away).
  void drop_all();
  // Waits until no spare is being prepared (fd and thread counts are then stable).
  void settle();

  ~RestoreSpares();

 private:
  struct Spare {
    std::string dir;  // as the caller spelled it
    WaitPortWords words;
    snapshot::OpenedSnapshot opened;  // its memory fd now held by the VM's mapping
    std::unique_ptr<Vm> vm;
    // `dir` was watched (changes_) since before its files were read, and no change was
    // reported since: false where inotify could miss one (a filesystem other than tmpfs or
    // ramfs), or once one was reported.
    bool watched = false;
  };

  RestoreSpares() = default;
  bool has_work() const;  // mutex_ held
  void run();
  std::unique_ptr<Spare> make(const std::string& dir, const WaitPortWords& words);
  // forget(*dir), or with no `dir`, drop_all.
  void drop(const std::string* dir);
  // mutex_ held. Watches `dir` (and only it) and drops the changes reported so far; false when
  // it cannot be watched. `read_changes_locked` takes what was reported since: true when any of
  // it is about the watched directory, or when some was lost.
  bool watch_locked(const std::string& dir);
  bool read_changes_locked();
  void unwatch_locked();

  std::mutex mutex_;
  std::condition_variable wanted_changed_;
  std::condition_variable idle_;
  std::string wanted_;  // empty: nothing to prepare
  WaitPortWords wanted_words_;
  std::unique_ptr<Spare> spare_;
  bool preparing_ = false;
  int checking_ = 0;  // take() calls comparing a spare's files (it still maps them)
  bool stopping_ = false;
  Counts counts_;
  // One inotify instance for the process's spares, kept until exit: closing one waits for an
  // SRCU grace period in the kernel (milliseconds), which the JS thread must never pay.
  UniqueFd changes_;
  int changes_wd_ = -1;
  std::string watched_dir_;
  std::thread thread_;
};

}  // namespace nodevisor::vmm
