// The probe's main loop, entered at CPL 3 (from entry.S's PVH path, or directly by nodevisor's
// VMM through the user entry; see README.md). It prints the banner, stamps the ready phase, then
// parks on the wait port and serves the VMM's commands and its virtio devices. Idle time is
// spent blocked in the VMM on the wait port, never spinning here.
#include "agent.h"
#include "net.h"
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
  // The virtio devices are brought up when first needed (the VMM's first virtio word, or the
  // first idle timeout), not here: their ~30 MMIO exits would compete with the host reading
  // the "ready" it was just told about, and a VM that never uses them never pays for them.
  int virtio_up = 0;
  for (;;) {
    if (virtio_up && agent_poll()) continue;  // work arrived: look again before parking
    if (virtio_up && net_poll()) continue;
    u32 command = wait_for_work();
    switch (command) {
      case PROBE_CMD_NONE:
      case PROBE_CMD_VIRTIO:  // the VMM queued virtio work: the next poll serves it
        if (!virtio_up) {
          (void)agent_init();
          virtio_up = 1;
        }
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
