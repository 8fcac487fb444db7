// The probe's main loop, entered from entry.S in 64-bit mode (CPL 0 by default, CPL 3 with
// IOPL 3 when built with PROBE_USER_MODE). It prints the banner, stamps the ready phase, then
// parks on the wait port and serves the VMM's commands. Kept short: on kvm_pvm each CPL-0
// instruction is emulated, and idle time is spent blocked in the VMM, not spinning here.
#include "agent.h"
#include "probe.h"

u32 wait_for_work(void) { return inl(PROBE_WAIT_PORT); }

void serial_write(const char* text) {
  for (; *text != '\0'; ++text) outb(PROBE_COM1_PORT, (u8)*text);
}

#define UART_LSR 5
#define UART_LSR_DATA_READY 0x01

static void echo_console_input(void) {
  while (inb(PROBE_COM1_PORT + UART_LSR) & UART_LSR_DATA_READY) {
    outb(PROBE_COM1_PORT, inb(PROBE_COM1_PORT));
  }
}

static void exit_guest(u8 status) {
  // One byte: both nodevisor's exit port and QEMU's isa-debug-exit (2 ports wide) take it.
  outb(PROBE_EXIT_PORT, status);
  // Only reached when nothing handles the exit port: stay put (CPL 3 cannot `hlt`).
  for (;;) __asm__ volatile("pause");
}

static void count_forever(void) {
  volatile u64* counter = (volatile u64*)(PROBE_STATUS_GPA + PROBE_STATUS_COUNTER_OFFSET);
  for (;;) *counter = *counter + 1;
}

__attribute__((noreturn)) void probe_main(u32 start_info_address) {
  (void)start_info_address;
  serial_write(PROBE_BANNER);
  outb(PROBE_PHASE_PORT, PROBE_PHASE_READY);
  // After "ready": the start time measured up to phase 0x41 is the VM's, not our drivers'.
  (void)agent_init();
  for (;;) {
    if (agent_poll()) continue;  // work arrived: look again before parking
    u32 command = wait_for_work();
    switch (command) {
      case PROBE_CMD_NONE:
      case PROBE_CMD_VIRTIO:  // the VMM queued virtio work: the next poll serves it
        break;
      case PROBE_CMD_EXIT:
      case PROBE_CMD_ABSENT:  // no nodevisor VMM (QEMU): we are done once ready
        exit_guest(0);
        break;
      case PROBE_CMD_COUNT:
        count_forever();
        break;
      case PROBE_CMD_CONSOLE_INPUT:
        echo_console_input();
        break;
      default:
        serial_write("probe: unknown command\n");
        break;
    }
  }
}
