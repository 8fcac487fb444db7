// Test-only: the probe acting as a hostile guest (request `probe.hostile`, issue 10). Each kind
// does what a malicious kernel could do to stall the host, forever, so tests can check that the
// VMM bounds it: stop() returns quickly, the JS thread's calls into the devices do not wait,
// the event queue to JS stays bounded.
//
//   flood-disk     one virtio-blk request whose 128 data buffers all alias the same 8 MiB of
//                  RAM (a 1 GiB read), published 256 times and re-published as each comes
//                  back; between notifications the vCPU reads a register that takes the
//                  device's mutex (the review's reproduction).
//   flood-console  256 zero-length chains kept available on both console queues.
//   flood-port80   `rep outsb` of a page to the phase port, in a loop.
//
// The disk and console kinds announce themselves with phase PROBE_PHASE_HOSTILE once armed.
// None of them replies (a hostile guest does not); an unknown kind returns, and agent.c then
// answers ENOTSUP. The devices are re-initialised here with 256-entry queues, which the
// probe's own driver (virtio.c, 32 entries) does not use; agent.c never runs again after.
#include "json_scan.h"
#include "virtio.h"

#define PROBE_PHASE_HOSTILE 0x48


#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

#define BIG_QUEUE 256
#define ALIAS_BASE 0x2000000ull  // 32 MiB: above the probe's image and buffers
#define ALIAS_BYTES (8ull << 20)
#define ALIAS_COUNT 128

struct big_queue {
  struct vq_desc desc[BIG_QUEUE] __attribute__((aligned(16)));
  struct {
    u16 flags;
    u16 idx;
    u16 ring[BIG_QUEUE];
    u16 used_event;
  } avail __attribute__((aligned(2)));
  struct {
    u16 flags;
    u16 idx;
    struct vq_used_elem ring[BIG_QUEUE];
    u16 avail_event;
  } used __attribute__((aligned(4096)));
  u16 avail_idx;
  u16 last_used;
};

static struct big_queue queues[2] __attribute__((aligned(4096)));
static u8 port80_page[4096];
static struct {
  u32 type;
  u32 reserved;
  u64 sector;
} header;
static volatile u8 status_byte;

// The virtio handshake with `n` queues of BIG_QUEUE entries; 0 when DRIVER_OK stuck.
static int bring_up(u64 base, int n) {
  mmio_write32(base + R_STATUS, 0);
  mmio_write32(base + R_STATUS, 1);
  mmio_write32(base + R_STATUS, 1 | 2);
  mmio_write32(base + R_DRIVER_FEATURES_SEL, 0);
  mmio_write32(base + R_DRIVER_FEATURES, 0);
  mmio_write32(base + R_DRIVER_FEATURES_SEL, 1);
  mmio_write32(base + R_DRIVER_FEATURES, 1);  // VERSION_1
  mmio_write32(base + R_STATUS, 1 | 2 | 8);
  for (int i = 0; i < n; i++) {
    struct big_queue* q = &queues[i];
    memset(q, 0, sizeof *q);
    if (vq_program(base, (u32)i, BIG_QUEUE, &q->desc, &q->avail, &q->used) < 0) return -1;
  }
  mmio_write32(base + R_STATUS, 1 | 2 | 8 | 4);
  return (mmio_read32(base + R_STATUS) & 4) ? 0 : -1;
}

// Makes head `head` available once more (the chain's descriptors stay as they are).
static void publish(struct big_queue* q, u16 head) {
  q->avail.ring[q->avail_idx % BIG_QUEUE] = head;
  barrier();
  q->avail_idx++;
  q->avail.idx = q->avail_idx;
  mb();
}

// Counts the used entries the device returned since the last call.
static u16 take_used(struct big_queue* q) {
  barrier();
  u16 idx = *(volatile u16*)&q->used.idx;
  u16 n = (u16)(idx - q->last_used);
  q->last_used = idx;
  return n;
}

static int find(u32 device_id, struct virtio_dev* out) {
  struct virtio_dev found[VIRTIO_MMIO_MAX_DEVICES];
  int n = virtio_discover(found, VIRTIO_MMIO_MAX_DEVICES);
  for (int i = 0; i < n; i++) {
    if (found[i].device_id == device_id) {
      *out = found[i];
      return 0;
    }
  }
  return -1;
}

static void flood_disk(void) {
  struct virtio_dev dev;
  if (find(VIRTIO_ID_BLOCK, &dev) != 0 || bring_up(dev.base, 1) != 0) return;
  struct big_queue* q = &queues[0];
  // header, ALIAS_COUNT x the same 8 MiB (device-writable: a read from the disk), status.
  header.type = 0;  // VIRTIO_BLK_T_IN
  header.sector = 0;
  q->desc[0] = (struct vq_desc){(u64)&header, sizeof header, DESC_F_NEXT, 1};
  for (u16 i = 1; i <= ALIAS_COUNT; i++) {
    q->desc[i] = (struct vq_desc){ALIAS_BASE, (u32)ALIAS_BYTES, DESC_F_WRITE | DESC_F_NEXT, (u16)(i + 1)};
  }
  q->desc[ALIAS_COUNT + 1] = (struct vq_desc){(u64)&status_byte, 1, DESC_F_WRITE, 0};
  for (int i = 0; i < BIG_QUEUE; i++) publish(q, 0);
  mmio_write32(dev.base + 0x050, 0);  // QueueNotify
  outb(PROBE_PHASE_PORT, PROBE_PHASE_HOSTILE);
  for (;;) {
    u16 back = take_used(q);
    for (u16 i = 0; i < back; i++) publish(q, 0);
    if (back) mmio_write32(dev.base + 0x050, 0);
    (void)mmio_read32(dev.base + R_STATUS);  // served under the device mutex
  }
}

static void flood_console(void) {
  struct virtio_dev dev;
  if (find(VIRTIO_ID_CONSOLE, &dev) != 0 || bring_up(dev.base, 2) != 0) return;
  for (int qi = 0; qi < 2; qi++) {
    struct big_queue* q = &queues[qi];
    // Receive chains are device-writable, transmit chains device-readable; all are empty.
    for (u16 i = 0; i < BIG_QUEUE; i++) {
      q->desc[i] = (struct vq_desc){(u64)port80_page, 0, qi == 0 ? DESC_F_WRITE : 0, 0};
      publish(q, i);
    }
  }
  mmio_write32(dev.base + 0x050, 0);
  mmio_write32(dev.base + 0x050, 1);
  outb(PROBE_PHASE_PORT, PROBE_PHASE_HOSTILE);
  // Re-publish at native speed, without an exit per round: a device that loops while chains
  // are available never sees the ring empty. Notify (and touch a locked register) only when
  // the device seems to have stopped taking chains.
  for (u32 idle = 0;; idle++) {
    for (int qi = 0; qi < 2; qi++) {
      struct big_queue* q = &queues[qi];
      u16 back = take_used(q);
      // Every chain is one descriptor and its own head: re-publish heads in order.
      for (u16 i = 0; i < back; i++) publish(q, (u16)(q->avail_idx % BIG_QUEUE));
      if (back) idle = 0;
    }
    if (idle == 100000) {
      mmio_write32(dev.base + 0x050, 0);
      mmio_write32(dev.base + 0x050, 1);
      (void)mmio_read32(dev.base + R_STATUS);
      idle = 0;
    }
  }
}

static void flood_port80(void) {
  for (u64 i = 0; i < sizeof port80_page; i++) port80_page[i] = (u8)(0x50 + (i & 0x0f));
  for (;;) {
    const void* src = port80_page;
    u64 count = sizeof port80_page;
    __asm__ volatile("rep outsb" : "+S"(src), "+c"(count) : "d"((u16)PROBE_PHASE_PORT) : "memory");
  }
}

// Runs the kind named in the request; returns only when the kind is unknown.
void hostile_run(const char* payload, u32 n) {
  struct json_value v;
  char kind[32];
  if (json_find(payload, n, "kind", &v) != 0 || json_plain_string(&v, kind, sizeof kind) != 0) return;
  if (memcmp(kind, "flood-disk", 11) == 0) flood_disk();
  if (memcmp(kind, "flood-console", 14) == 0) flood_console();
  if (memcmp(kind, "flood-port80", 13) == 0) flood_port80();
}
