// virtio-blk requests (virtio 1.2 §5.2.6): header, data, status, one request at a time.
#include "blk.h"

#define BLK_T_IN 0
#define BLK_T_GET_ID 8

struct blk_header {
  u32 type;
  u32 reserved;
  u64 sector;
};

static struct blk_header header;
static volatile u8 status;
static char id_buffer[BLK_SERIAL_BYTES];

int blk_init(struct blk* b, const struct virtio_dev* dev) {
  b->dev = *dev;
  b->ready = virtio_init(&b->dev, &b->vq, 1) == 0;
  return b->ready ? 0 : -1;
}

u64 blk_capacity(struct blk* b) { return virtio_config_read64(&b->dev, 0) * 512; }

// Sends one request (header, data, status) and polls until the device answers.
static int blk_request(struct blk* b, u32 type, u64 sector, void* data, u32 len) {
  header.type = type;
  header.reserved = 0;
  header.sector = sector;
  status = 0xff;
  u64 addrs[3] = {(u64)&header, (u64)data, (u64)&status};
  u32 lens[3] = {sizeof header, len, 1};
  vq_publish(&b->vq, 0, addrs, lens, 3, 1);
  vq_notify(&b->dev, 0);
  u16 head;
  u32 used_len;
  while (!vq_take_used(&b->vq, &head, &used_len)) __asm__ volatile("pause");
  return status == 0 ? 0 : -1;
}

int blk_serial(struct blk* b, char out[BLK_SERIAL_BYTES + 1]) {
  memset(id_buffer, 0, sizeof id_buffer);
  if (blk_request(b, BLK_T_GET_ID, 0, id_buffer, BLK_SERIAL_BYTES) != 0) return -1;
  memcpy(out, id_buffer, BLK_SERIAL_BYTES);
  out[BLK_SERIAL_BYTES] = 0;
  return 0;
}

int blk_read(struct blk* b, u64 sector, void* buf, u32 len) { return blk_request(b, BLK_T_IN, sector, buf, len); }
