// What placing a device on the buses needs from the VM (device_manager/device_manager.cc): an
// interrupt line it can raise by writing an eventfd, and doorbells KVM serves itself, without a
// VM exit. KvmVm implements it with KVM_IRQFD and KVM_IOEVENTFD, so the device side never issues
// KVM ioctls on a raw fd.
//
// Threads: called while devices are placed (VM creation or hot-plug); the calls are thread-safe
// in KVM.
#pragma once

#include <cstdint>

#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::vmm {

class VmWiring {
 public:
  virtual ~VmWiring() = default;
  // A new eventfd; a write to it raises interrupt line `gsi` in the guest.
  virtual Result<UniqueFd> connect_irqfd(uint32_t gsi) = 0;
  // Has KVM signal `fd` on a 4-byte guest write of `datamatch` at `address`.
  virtual Status connect_ioeventfd(uint64_t address, uint32_t datamatch, int fd) = 0;
};

}  // namespace nodevisor::vmm
