// Opening a snapshot directory for a restore, and the kernel objects a restored VM runs on.
//
// `open_snapshot` reads and checks `dir/state` and opens `dir/memory`; `make_restore_kernel`
// builds the kernel objects: guest memory mapped MAP_PRIVATE from the memory file, a KVM VM
// with that memory registered, its irqchip and PIT, and the vCPUs with the snapshot's CPUID.
// Registering the memory grows with its size (KVM allocates per-page slot metadata); nothing
// here depends on anything but the snapshot, so a restore can be made ahead of time
// (vmm/restore_spares.h), and `FileIdentity` tells whether the files are still the ones it
// was made from.
//
// Threads: the restoring thread (a libuv worker) or the restore-prep thread.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <string>

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
  // `dir`'s files are still these (same inode, size and mtime): two stat calls.
  bool files_unchanged(const std::string& dir) const;
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

}  // namespace nodevisor::vmm::snapshot
