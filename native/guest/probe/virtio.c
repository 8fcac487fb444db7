// Polling virtio-mmio driver (see virtio.h). Register offsets are virtio 1.2 §4.2.2.
#include "virtio.h"


#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

int virtio_discover(struct virtio_dev* out, int max) {
  int found = 0;
  for (int i = 0; i < VIRTIO_MMIO_MAX_DEVICES && found < max; i++) {
    u64 base = VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE * (u64)i;
    // An empty window reads as all ones: the scan stops at the first one.
    if (mmio_read32(base + R_MAGIC) != 0x74726976u || mmio_read32(base + R_VERSION) != 2) break;
    out[found].base = base;
    out[found].device_id = mmio_read32(base + R_DEVICE_ID);
    found++;
  }
  return found;
}

int vq_program(u64 base, u32 index, u32 size, const void* desc, const void* avail, const void* used) {
  mmio_write32(base + R_QUEUE_SEL, index);
  if (mmio_read32(base + R_QUEUE_NUM_MAX) < size) return -1;
  mmio_write32(base + R_QUEUE_NUM, size);
  const u64 rings[3] = {(u64)desc, (u64)avail, (u64)used};
  const u32 low[3] = {R_QUEUE_DESC_LOW, R_QUEUE_DRIVER_LOW, R_QUEUE_DEVICE_LOW};
  const u32 high[3] = {R_QUEUE_DESC_HIGH, R_QUEUE_DRIVER_HIGH, R_QUEUE_DEVICE_HIGH};
  for (int r = 0; r < 3; r++) {
    mmio_write32(base + low[r], (u32)rings[r]);
    mmio_write32(base + high[r], (u32)(rings[r] >> 32));
  }
  mmio_write32(base + R_QUEUE_READY, 1);
  return 0;
}

int virtio_init(struct virtio_dev* dev, struct virtqueue* queues, int nqueues) {
  u64 b = dev->base;
  mmio_write32(b + R_STATUS, 0);
  mmio_write32(b + R_STATUS, S_ACK);
  mmio_write32(b + R_STATUS, S_ACK | S_DRIVER);
  // Features: VERSION_1 (bit 32) and nothing else.
  mmio_write32(b + R_DRIVER_FEATURES_SEL, 0);
  mmio_write32(b + R_DRIVER_FEATURES, 0);
  mmio_write32(b + R_DRIVER_FEATURES_SEL, 1);
  mmio_write32(b + R_DRIVER_FEATURES, 1);
  mmio_write32(b + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
  if (!(mmio_read32(b + R_STATUS) & S_FEATURES_OK)) return -1;
  for (int i = 0; i < nqueues; i++) {
    struct virtqueue* q = &queues[i];
    memset(q, 0, sizeof *q);
    if (vq_program(b, (u32)i, VQ_SIZE, &q->desc, &q->avail, &q->used) < 0) return -1;
  }
  mmio_write32(b + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  return (mmio_read32(b + R_STATUS) & S_DRIVER_OK) ? 0 : -1;
}

void vq_publish(struct virtqueue* q, u16 first, const u64* addrs, const u32* lens, int n, int readable) {
  for (int i = 0; i < n; i++) {
    struct vq_desc* d = &q->desc[(first + i) % VQ_SIZE];
    d->addr = addrs[i];
    d->len = lens[i];
    d->flags = (u16)((i >= readable ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0));
    d->next = (u16)((first + i + 1) % VQ_SIZE);
  }
  q->avail.ring[q->avail_idx % VQ_SIZE] = first;
  barrier();  // the descriptors and ring entry before the index that publishes them
  q->avail_idx++;
  q->avail.idx = q->avail_idx;
  mb();
}

void vq_notify(struct virtio_dev* dev, u16 queue) { mmio_write32(dev->base + R_QUEUE_NOTIFY, queue); }

int vq_take_used(struct virtqueue* q, u16* head, u32* len) {
  barrier();
  u16 idx = *(volatile u16*)&q->used.idx;
  if (idx == q->last_used) return 0;
  barrier();  // the element after the index that published it
  struct vq_used_elem e = q->used.ring[q->last_used % VQ_SIZE];
  q->last_used++;
  *head = (u16)e.id;
  *len = e.len;
  return 1;
}

u32 virtio_config_generation(struct virtio_dev* dev) { return mmio_read32(dev->base + R_CONFIG_GENERATION); }

u64 virtio_config_read64(struct virtio_dev* dev, u32 offset) {
  // Two 32-bit reads, retried while the generation changes (virtio 1.2 §2.5.1).
  for (;;) {
    u32 gen = virtio_config_generation(dev);
    u64 lo = mmio_read32(dev->base + R_CONFIG + offset);
    u64 hi = mmio_read32(dev->base + R_CONFIG + offset + 4);
    if (virtio_config_generation(dev) == gen) return lo | (hi << 32);
  }
}
