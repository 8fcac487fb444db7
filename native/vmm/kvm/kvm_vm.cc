#include "vmm/kvm/kvm_vm.h"

#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#include <cerrno>

#include "vmm/kvm/kvm_system.h"

namespace nodevisor::vmm {

Result<KvmVm> KvmVm::create(const GuestMemory& memory) {
  auto vm = create_empty();
  if (!vm.ok()) return vm.error();
  NV_TRY(vm->set_up(memory));
  return vm;
}

Result<KvmVm> KvmVm::create_empty() {
  auto system = KvmSystem::get();
  if (!system.ok()) return system.error();
  KvmVm vm;
  int fd;
  do {
    fd = ioctl(system.value()->fd(), KVM_CREATE_VM, 0);
  } while (fd < 0 && errno == EINTR);  // the kernel may be interrupted while setting up
  if (fd < 0) return sys_error(errno, "ioctl(KVM_CREATE_VM)", "cannot create a KVM VM", "EKVM_CREATE_VM");
  vm.fd_.reset(fd);
  return vm;
}

Status KvmVm::set_up(const GuestMemory& memory) {
  NV_TRY(register_memory(memory));
  return create_irqchip_and_pit();
}

Status KvmVm::create_irqchip_and_pit() {
  // Intel needs these before the first vCPU runs; other KVM flavours (AMD, kvm_pvm) accept
  // and ignore them, and an ENOTTY/EINVAL from a flavour without them is not fatal.
  uint64_t identity = kIdentityMapAddress;
  if (ioctl(fd(), KVM_SET_IDENTITY_MAP_ADDR, &identity) != 0 && errno != ENOTTY && errno != EINVAL) {
    return sys_error(errno, "ioctl(KVM_SET_IDENTITY_MAP_ADDR)", "cannot set the identity map address", "EKVM_SETUP");
  }
  if (ioctl(fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(kTssAddress)) != 0 && errno != ENOTTY &&
      errno != EINVAL) {
    return sys_error(errno, "ioctl(KVM_SET_TSS_ADDR)", "cannot set the TSS address", "EKVM_SETUP");
  }
  if (ioctl(fd(), KVM_CREATE_IRQCHIP, 0) != 0) {
    return sys_error(errno, "ioctl(KVM_CREATE_IRQCHIP)", "cannot create the in-kernel irqchip", "EKVM_SETUP");
  }
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  if (ioctl(fd(), KVM_CREATE_PIT2, &pit) != 0) {
    return sys_error(errno, "ioctl(KVM_CREATE_PIT2)", "cannot create the in-kernel PIT", "EKVM_SETUP");
  }
  return {};
}

Status KvmVm::register_memory(const GuestMemory& memory) {
  uint32_t slot = 0;
  for (const GuestRegion& region : memory.regions()) {
    kvm_userspace_memory_region kvm_region{};
    kvm_region.slot = slot++;
    kvm_region.guest_phys_addr = region.guest_address;
    kvm_region.memory_size = region.size;
    kvm_region.userspace_addr = memory.host_address_for_kvm(region);
    if (ioctl(fd(), KVM_SET_USER_MEMORY_REGION, &kvm_region) != 0) {
      return sys_error(errno, "ioctl(KVM_SET_USER_MEMORY_REGION)", "cannot register guest memory", "EKVM_MEMORY");
    }
  }
  return {};
}

uint32_t KvmVm::coalesce_pio_writes(uint16_t port, uint32_t size) {
  // Whether KVM can, and where the ring lies, is the same for every VM of this host: asked of
  // the first VM only (two ioctls less on every later start).
  static const int page = [this] {
    const int ring = ioctl(fd(), KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
    return ring > 0 && ioctl(fd(), KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) > 0 ? ring : 0;
  }();
  if (page <= 0) return 0;
  kvm_coalesced_mmio_zone zone{};
  zone.addr = port;
  zone.size = size;
  zone.pio = 1;
  if (ioctl(fd(), KVM_REGISTER_COALESCED_MMIO, &zone) != 0) return 0;
  return static_cast<uint32_t>(page);
}

Status KvmVm::set_irq_line(uint32_t irq, bool level) {
  kvm_irq_level line{};
  line.irq = irq;
  line.level = level ? 1 : 0;
  if (ioctl(fd(), KVM_IRQ_LINE, &line) != 0) {
    return sys_error(errno, "ioctl(KVM_IRQ_LINE)", "cannot set an interrupt line", "EKVM_IRQ");
  }
  return {};
}

namespace {

Status vm_ioctl(int fd, unsigned long request, const void* arg, const char* name) {
  if (ioctl(fd, request, arg) != 0) {
    return sys_error(errno, std::string("ioctl(") + name + ")", std::string("VM ") + name + " failed", "EKVM_STATE");
  }
  return {};
}

}  // namespace

Status KvmVm::get_irqchip(uint32_t chip_id, kvm_irqchip& chip) const {
  chip = kvm_irqchip{};
  chip.chip_id = chip_id;
  return vm_ioctl(fd(), KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP");
}
Status KvmVm::set_irqchip(const kvm_irqchip& chip) { return vm_ioctl(fd(), KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP"); }
Status KvmVm::get_pit(kvm_pit_state2& pit) const { return vm_ioctl(fd(), KVM_GET_PIT2, &pit, "KVM_GET_PIT2"); }
Status KvmVm::set_pit(const kvm_pit_state2& pit) { return vm_ioctl(fd(), KVM_SET_PIT2, &pit, "KVM_SET_PIT2"); }
Status KvmVm::get_clock(kvm_clock_data& clock) const { return vm_ioctl(fd(), KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK"); }
Status KvmVm::set_clock(const kvm_clock_data& clock) { return vm_ioctl(fd(), KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK"); }

Result<UniqueFd> KvmVm::connect_irqfd(uint32_t gsi) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return sys_error(errno, "eventfd", "cannot create an interrupt eventfd");
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(fd.get());
  irqfd.gsi = gsi;
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) != 0) {
    return sys_error(errno, "ioctl(KVM_IRQFD)", "cannot connect a virtio interrupt", "EKVM_IRQ");
  }
  return fd;
}

Status KvmVm::connect_ioeventfd(uint64_t address, uint32_t datamatch, int fd) {
  kvm_ioeventfd io{};
  io.datamatch = datamatch;
  io.addr = address;
  io.len = 4;
  io.fd = fd;
  io.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &io) != 0) {
    return sys_error(errno, "ioctl(KVM_IOEVENTFD)", "cannot connect a virtio doorbell", "EKVM_IRQ");
  }
  return {};
}

}  // namespace nodevisor::vmm
