// Opening a snapshot directory for a restore, and restores made ahead of time.
//
// `open_snapshot` reads and checks `dir/state` and opens `dir/memory`; `make_restore_kernel`
// builds the kernel objects a restored VM runs on: guest memory mapped MAP_PRIVATE from the
// memory file, a KVM VM with that memory registered, its irqchip and PIT, and the vCPUs with
// the snapshot's CPUID. Together that is most of a restore's time (~0.8 ms of ~1.1 ms for
// 128 MiB here, and registering the memory grows with its size: KVM allocates per-page slot
// metadata), none of which depends on anything but the snapshot.
//
// So a caller that will restore the same snapshot again (the template factory) asks for it:
// `prepare(dir)` has the "nv-restore-prep" thread make a spare for `dir`, and the next
// `Vm::restore(dir)` takes it (`take`) when the files are still the ones it was made from (same
// inode, size and mtime). What is left to that restore is the state: devices, irqchip, PIT,
// clock, vCPU registers. The caller chooses when the preparation runs: on these 2-core
// machines, preparing while a clone answers its first request made that request up to 2x
// slower (128 MiB to 2 GiB), so the factory asks once the clone is handed over.
//
// One spare at a time, for the directory last asked for. It holds the memory file open and
// mapped, so `forget(dir)` drops it (and stops preparing) before the directory goes away: a
// tmpfs holding it could not be unmounted. NODEVISOR_WARM_VM=0 turns spares off.
//
// Threads: `open_snapshot` and `make_restore_kernel` on the restoring thread (a libuv worker)
// or the prep thread; `take` and `forget` from any thread.
#pragma once

#include <sys/stat.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sys/result.h"
#include "sys/unique_fd.h"
#include "vmm/kvm/kernel_objects.h"
#include "vmm/snapshot/vm_snapshot.h"

namespace nodevisor::vmm::snapshot {

// Which file this is, to tell a snapshot rewritten in place from the one a spare was made of.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  bool operator==(const FileIdentity& other) const;
  static FileIdentity of(const struct stat& st);
};

struct OpenedSnapshot {
  std::string state_path;
  std::shared_ptr<const VmSnapshot> snap;  // decoded, checked against this host's CPU
  UniqueFd memory;                         // dir/memory, its size checked against the config
  FileIdentity state_id;
  FileIdentity memory_id;
};

// Reads, checks and decodes `dir/state` and opens `dir/memory`; errors name the file
// (EBADSNAPSHOT for a truncated, corrupted, foreign or other-CPU snapshot).
Result<OpenedSnapshot> open_snapshot(const std::string& dir);

// A restored VM's kernel objects, with KVM's coalesced ring page for the probe's console
// (0: none). `empty_vm` is a VM made ahead (kvm/warm_vm.h) or one without an fd.
struct RestoreKernel {
  KernelObjects objects;
  uint32_t coalesced_page = 0;
};
Result<RestoreKernel> make_restore_kernel(const VmSnapshot& snap, UniqueFd memory_file, KvmVm empty_vm);

// A restore made ahead: the opened snapshot (its memory fd now owned by `kernel`) and its
// kernel objects, not yet touched by any VM.
struct RestoreSpare {
  std::string dir;  // as the caller spelled it
  OpenedSnapshot opened;
  RestoreKernel kernel;
};

class RestoreSpares {
 public:
  static RestoreSpares& instance();

  // Makes a spare for `dir` in the background (replacing one for another directory). Never
  // blocks; a failure is silent (the restore that finds no spare reports it).
  void prepare(const std::string& dir);
  // The spare for `dir` when there is one and its files are unchanged, else nullptr.
  std::unique_ptr<RestoreSpare> take(const std::string& dir);
  // Drops the spare for `dir`, if any, and stops preparing them; waits for a preparation in
  // progress. The spare's kernel objects go to the reaper (Reaper::drain waits for them).
  void forget(const std::string& dir);
  // Waits until no spare is being prepared (fd counts are then stable, for leak checks).
  void settle();

  ~RestoreSpares();

 private:
  RestoreSpares() = default;
  bool has_work() const;  // mutex_ held
  void run();

  std::mutex mutex_;
  std::condition_variable wanted_changed_;
  std::condition_variable idle_;
  std::string wanted_;  // empty: nothing to prepare
  std::unique_ptr<RestoreSpare> spare_;
  bool preparing_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace nodevisor::vmm::snapshot
