#include "vmm/kvm/kvm_system.h"

#include "vmm/kvm/kvm_abi.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <memory>

namespace nodevisor::vmm {

Result<KvmSystem*> KvmSystem::open_system() {
  auto system = std::make_unique<KvmSystem>();
  system->fd_.reset(open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!system->fd_.valid()) {
    Error e = sys_error(errno, "open", "cannot open /dev/kvm");
    e.path = "/dev/kvm";
    return e;
  }
  int version = ioctl(system->fd(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return plain_error("EKVM_API", "unsupported KVM API version " + std::to_string(version));
  }
  int mmap_size = ioctl(system->fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size <= 0) {
    return sys_error(errno, "ioctl(KVM_GET_VCPU_MMAP_SIZE)", "cannot read the vCPU mmap size",
                     "EKVM_SYSTEM");
  }
  system->vcpu_mmap_size_ = static_cast<size_t>(mmap_size);
  const int xsave_size = ioctl(system->fd(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
  if (xsave_size > 0) system->xsave_size_ = static_cast<uint32_t>(xsave_size);

  // The table size is not known in advance: grow until the kernel stops saying E2BIG. KVM
  // rejects more than KVM_MAX_CPUID_ENTRIES (256 today) with EINVAL, so start there.
  for (uint32_t capacity = 256; capacity <= 4096; capacity *= 2) {
    kvm_abi::CountedBuffer<kvm_cpuid_entry2> buffer(capacity);
    if (ioctl(system->fd(), kvm_abi::kGetSupportedCpuid, buffer.data()) == 0) {
      const uint32_t count = std::min<uint32_t>(buffer.count(), capacity);
      for (uint32_t i = 0; i < count; ++i) system->supported_cpuid_.push_back(buffer.get(i));
      return system.release();
    }
    if (errno != E2BIG) break;
  }
  return sys_error(errno, "ioctl(KVM_GET_SUPPORTED_CPUID)", "cannot read supported CPUID",
                   "EKVM_SYSTEM");
}

Result<const KvmSystem*> KvmSystem::get() {
  // Opened once per process and never closed: every VM shares it. A failure is remembered
  // too; /dev/kvm does not appear while a process runs.
  static const Result<KvmSystem*> instance = open_system();
  if (!instance.ok()) return instance.error();
  return static_cast<const KvmSystem*>(instance.value());
}

}  // namespace nodevisor::vmm
