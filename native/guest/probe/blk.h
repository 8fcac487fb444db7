// The probe's virtio-blk driver: synchronous (polled) reads, the serial (GET_ID) and the
// capacity, re-read on every use so a hot-plugged or detached disk is seen at once.
#pragma once

#include "virtio.h"

#define BLK_SERIAL_BYTES 20

struct blk {
  struct virtio_dev dev;
  struct virtqueue vq;
  int ready;
};

int blk_init(struct blk* b, const struct virtio_dev* dev);
// Capacity in bytes (0 for an empty slot).
u64 blk_capacity(struct blk* b);
// The serial, NUL-terminated (at most 20 characters); 0 on success.
int blk_serial(struct blk* b, char out[BLK_SERIAL_BYTES + 1]);
// Reads `len` bytes (a multiple of 512) from `sector` into `buf`; 0 on success.
int blk_read(struct blk* b, u64 sector, void* buf, u32 len);
