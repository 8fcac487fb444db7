#include "vmm/snapshot/open_snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include "vmm/devices/legacy/serial_8250.h"
#include "vmm/kvm/cpuid.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/snapshot/state_file.h"
#include "vmm/util/read_file.h"

namespace nodevisor::vmm::snapshot {

bool FileIdentity::operator==(const FileIdentity& other) const {
  return dev == other.dev && ino == other.ino && size == other.size && mtime.tv_sec == other.mtime.tv_sec &&
         mtime.tv_nsec == other.mtime.tv_nsec;
}

FileIdentity FileIdentity::of(const struct stat& st) { return {st.st_dev, st.st_ino, st.st_size, st.st_mtim}; }

bool OpenedSnapshot::files_unchanged(const std::string& dir) const {
  struct stat state {}, memory {};
  return stat(state_path.c_str(), &state) == 0 && stat(snapshot_file(dir, "memory").c_str(), &memory) == 0 &&
         FileIdentity::of(state) == state_id && FileIdentity::of(memory) == memory_id;
}

Result<OpenedSnapshot> open_snapshot(const std::string& dir) {
  OpenedSnapshot out;
  out.state_path = snapshot_file(dir, "state");
  const std::string memory_path = snapshot_file(dir, "memory");
  // Its identity before its content: a state file replaced in between makes a spare that the
  // restore's check (take) finds stale, never one that passes with the other file's content.
  struct stat st {};
  if (stat(out.state_path.c_str(), &st) != 0) {
    return sys_error(errno, "stat", "cannot find the snapshot state file " + out.state_path).at(out.state_path);
  }
  out.state_id = FileIdentity::of(st);
  auto file = read_whole_file(out.state_path, kMaxStateFileBytes, "snapshot state file", "the 64 MiB cap");
  if (!file.ok()) return file.error();
  auto payload = open_state_file(file.value(), out.state_path);
  if (!payload.ok()) return payload.error();
  auto snap = decode_vm_snapshot(payload.value(), out.state_path);
  if (!snap.ok()) return snap.error();
  auto system = KvmSystem::get();
  if (!system.ok()) return system.error();
  NV_TRY(check_host_cpu(snap.value(), system.value()->xsave_size(), system.value()->supported_cpuid(), out.state_path));

  out.memory.reset(open(memory_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!out.memory.valid()) {
    return sys_error(errno, "open", "cannot open the snapshot memory file " + memory_path).at(memory_path);
  }
  if (fstat(out.memory.get(), &st) != 0) return sys_error(errno, "fstat", "cannot stat " + memory_path).at(memory_path);
  const uint64_t want = snap.value().config.memory_mib << 20;
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != want) {
    return bad_snapshot(memory_path, "memory file is " + std::to_string(st.st_size) + " bytes; the snapshot's VM has " +
                                         std::to_string(snap.value().config.memory_mib) +
                                         " MiB of memory (truncated or not this snapshot's)");
  }
  out.memory_id = FileIdentity::of(st);
  out.snap = std::make_shared<const VmSnapshot>(std::move(snap.value()));
  return out;
}

Result<RestoreKernel> make_restore_kernel(const VmSnapshot& snap, UniqueFd memory_file, KvmVm empty_vm) {
  RestoreKernel out;
  auto memory = GuestMemory::map_private(std::move(memory_file), snap.config.memory_mib << 20);
  if (!memory.ok()) return memory.error();
  out.objects.memory = std::make_unique<GuestMemory>(std::move(memory.value()));
  if (empty_vm.fd() < 0) {
    auto made = KvmVm::create_empty();
    if (!made.ok()) return made.error();
    empty_vm = std::move(made.value());
  }
  out.objects.vm = std::move(empty_vm);
  // The memory goes in before the irqchip (kvm_vm.h says why).
  NV_TRY(out.objects.vm.set_up(*out.objects.memory));
  for (uint32_t index = 0; index < snap.config.vcpus; ++index) {
    auto vcpu = KvmVcpu::create(out.objects.vm, index);
    if (!vcpu.ok()) return vcpu.error();
    auto owned = std::make_unique<KvmVcpu>(std::move(vcpu.value()));
    // The snapshot's CPUID, not this host's table: the guest sees what it saw before.
    NV_TRY(owned->set_cpuid(vcpu_cpuid(snap.cpuid, index, snap.config.vcpus)));
    out.objects.vcpus.push_back(std::move(owned));
  }
  if (snap.coalesce_com1) out.coalesced_page = out.objects.vm.coalesce_pio_writes(Serial8250::kCom1Port, 1);
  return out;
}

}  // namespace nodevisor::vmm::snapshot
