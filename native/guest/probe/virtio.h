// A polling virtio-mmio (version 2) driver for the probe: finds devices, negotiates
// VERSION_1 only, and drives split virtqueues whose rings and buffers live in the probe's
// own (identity-mapped) memory. No interrupts: the probe polls the used rings, and parks on
// the wait port when there is nothing to do.
#pragma once

#include "probe.h"

// Where nodevisor's VMM places virtio-mmio devices (native/vmm/device_manager/device_manager.h).
#define VIRTIO_MMIO_BASE 0xd0000000ull
#define VIRTIO_MMIO_STRIDE 0x1000ull
#define VIRTIO_MMIO_MAX_DEVICES 19

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3

#define VQ_SIZE 32

struct vq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct vq_avail {
  u16 flags;
  u16 idx;
  u16 ring[VQ_SIZE];
  u16 used_event;
};
struct vq_used_elem {
  u32 id;
  u32 len;
};
struct vq_used {
  u16 flags;
  u16 idx;
  struct vq_used_elem ring[VQ_SIZE];
  u16 avail_event;
};

struct virtqueue {
  struct vq_desc desc[VQ_SIZE] __attribute__((aligned(16)));
  struct vq_avail avail __attribute__((aligned(2)));
  struct vq_used used __attribute__((aligned(4096)));
  u16 avail_idx;    // next avail slot we publish
  u16 last_used;    // used entries consumed so far
};

struct virtio_dev {
  u64 base;
  u32 device_id;
};

// Scans the MMIO window; fills `out` with up to `max` devices; returns how many.
// virtio-mmio (v2) register offsets, for this driver and the hostile one (hostile.c).
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DRIVER_FEATURES 0x020
#define R_DRIVER_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define R_QUEUE_DESC_LOW 0x080
#define R_QUEUE_DESC_HIGH 0x084
#define R_QUEUE_DRIVER_LOW 0x090
#define R_QUEUE_DRIVER_HIGH 0x094
#define R_QUEUE_DEVICE_LOW 0x0a0
#define R_QUEUE_DEVICE_HIGH 0x0a4
#define R_CONFIG_GENERATION 0x0fc
#define R_CONFIG 0x100

int virtio_discover(struct virtio_dev* out, int max);
// Resets the device and runs the handshake with `nqueues` queues; 0 on success.
int virtio_init(struct virtio_dev* dev, struct virtqueue* queues, int nqueues);
// Programs queue `index` of the device at `base` with `size` entries and its three rings, and
// marks it ready; -1 when the device offers fewer entries. (Also used by hostile.c's big queues.)
int vq_program(u64 base, u32 index, u32 size, const void* desc, const void* avail, const void* used);
// Publishes a chain of `n` buffers (the first `readable` are device-readable) as one request,
// using descriptors [first, first + n).
void vq_publish(struct virtqueue* q, u16 first, const u64* addrs, const u32* lens, int n, int readable);
void vq_notify(struct virtio_dev* dev, u16 queue);
// One used entry, if the device returned one: 1 and *head/*len set; else 0.
int vq_take_used(struct virtqueue* q, u16* head, u32* len);
u32 virtio_config_generation(struct virtio_dev* dev);
u64 virtio_config_read64(struct virtio_dev* dev, u32 offset);
