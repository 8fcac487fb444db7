// `probe.fault`: the guest ends itself in one of the ways a VM can end badly, each of which the
// VMM must report as the VM's exit reason (native/vmm/vstate/vcpu_thread.cc, native/vmm/vm.cc):
//
//   triple-fault    ud2 at CPL 3 with no IDT (the VMM loads a zero-limit one): #UD cannot be
//                   delivered, nor the #GP or #DF after it, so the CPU shuts down
//                   (KVM_EXIT_SHUTDOWN -> reason "shutdown").
//   i8042-reset     the keyboard controller's pulse-reset command, 0xfe to port 0x64, as
//                   Linux's reboot=k does (reason "reset").
//   internal-error  a jump into guest-physical memory that is neither RAM nor a device window:
//                   KVM cannot fetch the instruction and gives up emulating it
//                   (KVM_EXIT_INTERNAL_ERROR -> reason "internal-error").
//
// Runs on the probe's only vCPU, from the agent loop (agent.c's dispatch).
#include "faults.h"

#include "json_scan.h"

// Above the virtio-mmio windows (0xd0000000...) and the guest's RAM of a test VM, below 4 GiB
// (mapped by the identity page tables), with no device behind it.
#define UNBACKED_GPA 0xf0000000ull

static void __attribute__((noreturn)) spin(void) {
  for (;;) __asm__ volatile("pause");
}

void probe_fault(const char* payload, u32 n) {
  struct json_value v;
  char kind[24];
  if (json_find(payload, n, "kind", &v) != 0 || json_plain_string(&v, kind, sizeof kind) != 0) return;
  if (memcmp(kind, "triple-fault", 13) == 0) {
    __asm__ volatile("ud2");
    spin();
  }
  if (memcmp(kind, "i8042-reset", 12) == 0) {
    outb(0x64, 0xfe);
    spin();  // the VMM ends the VM; nothing runs after this
  }
  if (memcmp(kind, "internal-error", 15) == 0) {
    void (*nowhere)(void) = (void (*)(void))UNBACKED_GPA;
    nowhere();
    spin();
  }
}
