// Agent protocol over virtio-console for the probe. One request at a time: a frame is
// assembled from the receive buffers, answered, and the answer sent before the next frame.
#include "agent.h"

#include "../protocol/frame.h"
#include "blk.h"
#include "../protocol/crc32.h"
#include "generation.h"
#include "faults.h"
#include "json_scan.h"
#include "net.h"
#include "virtio.h"

#define RX_BUF_SIZE 0x10000
#define MAX_DISKS 18
#define CHECKSUM_CHUNK 0x10000

struct console {
  struct virtio_dev dev;
  struct virtqueue q[2];  // 0: receive, 1: transmit
};

static struct console console;
static int have_console;
static struct blk disks[MAX_DISKS];
static int disk_count;

static u8 rx_buffers[VQ_SIZE][RX_BUF_SIZE] __attribute__((aligned(4096)));
static u8 frame[NV_FRAME_HEADER_SIZE + NV_FRAME_MAX_PAYLOAD];
static u8 reply[NV_FRAME_HEADER_SIZE + NV_FRAME_MAX_PAYLOAD];
static u8 disk_chunk[CHECKSUM_CHUNK] __attribute__((aligned(512)));

// Frame assembly state.
static u32 have;            // bytes of frame[] filled (header included)
static u32 payload_len;     // valid once have >= 4
static u32 skip_remaining;  // bytes of an oversized frame still to discard

static void post_rx(u16 index) {
  u64 addr = (u64)rx_buffers[index];
  u32 len = RX_BUF_SIZE;
  vq_publish(&console.q[0], index, &addr, &len, 1, 0);
}

int agent_init(void) {
  struct virtio_dev found[VIRTIO_MMIO_MAX_DEVICES];
  int n = virtio_discover(found, VIRTIO_MMIO_MAX_DEVICES);
  for (int i = 0; i < n; i++) {
    if (found[i].device_id == VIRTIO_ID_CONSOLE && !have_console) {
      console.dev = found[i];
      if (virtio_init(&console.dev, console.q, 2) == 0) have_console = 1;
    } else if (found[i].device_id == VIRTIO_ID_BLOCK && disk_count < MAX_DISKS) {
      if (blk_init(&disks[disk_count], &found[i]) == 0) disk_count++;
    }
  }
  if (!have_console) return -1;
  for (u16 i = 0; i < VQ_SIZE; i++) post_rx(i);
  vq_notify(&console.dev, 0);
  return 0;
}

// --- replies ---

static u32 out_len;     // payload bytes in reply[]
static u64 reply_id;    // the id of the reply being built, for the overflow error
static int overflowed;  // the reply did not fit: send_reply sends an error instead

// Room is kept for the closing brace, so a reply is never cut into invalid JSON.
#define REPLY_ROOM (NV_FRAME_MAX_PAYLOAD - 1)

static void put(const char* s) {
  while (*s) {
    if (out_len >= REPLY_ROOM) {
      overflowed = 1;
      return;
    }
    reply[NV_FRAME_HEADER_SIZE + out_len++] = (u8)*s++;
  }
}

static void put_bytes(const char* s, u64 n) {
  if (n > REPLY_ROOM - out_len) {
    overflowed = 1;
    return;
  }
  memcpy(reply + NV_FRAME_HEADER_SIZE + out_len, s, n);
  out_len += (u32)n;
}

static void put_uint(u64 v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) {
    char c[2] = {digits[--n], 0};
    put(c);
  }
}

static void begin_reply(u64 id, const char* type) {
  out_len = 0;
  overflowed = 0;
  reply_id = id;
  put("{\"id\":");
  put_uint(id);
  put(",\"type\":\"");
  put(type);
  put("\"");
}

// Sends reply[] and waits until the host took it; parks on the wait port meanwhile.
static void send_reply(void) {
  if (overflowed) {
    out_len = 0;
    overflowed = 0;
    put("{\"id\":");
    put_uint(reply_id);
    put(",\"type\":\"error\",\"code\":\"E2BIG\",\"message\":\"the reply does not fit in one frame\"");
  }
  reply[NV_FRAME_HEADER_SIZE + out_len++] = '}';
  nv_frame_put_header(reply, out_len);
  u64 addr = (u64)reply;
  u32 len = NV_FRAME_HEADER_SIZE + out_len;
  vq_publish(&console.q[1], 0, &addr, &len, 1, 1);
  vq_notify(&console.dev, 1);
  u16 head;
  u32 used;
  while (!vq_take_used(&console.q[1], &head, &used)) {
    if (wait_for_work() == PROBE_CMD_EXIT) outb(PROBE_EXIT_PORT, 0);
  }
}

static void send_error(u64 id, const char* code, const char* message) {
  begin_reply(id, "error");
  put(",\"code\":\"");
  put(code);
  put("\",\"message\":\"");
  put(message);
  put("\"");
  send_reply();
}

// --- requests ---

static struct blk* disk_by_serial(const char* serial) {
  char id[BLK_SERIAL_BYTES + 1];
  for (int i = 0; i < disk_count; i++) {
    if (blk_capacity(&disks[i]) == 0) continue;  // an empty slot
    if (blk_serial(&disks[i], id) != 0) continue;
    u64 a = 0;
    while (id[a] && serial[a] && id[a] == serial[a]) a++;
    if (id[a] == serial[a]) return &disks[i];
  }
  return 0;
}

static void serve_checksum(u64 id, const char* payload, u32 n) {
  struct json_value v;
  char serial[BLK_SERIAL_BYTES + 1];
  u64 offset, length;
  if (json_find(payload, n, "serial", &v) != 0 || json_plain_string(&v, serial, sizeof serial) != 0) {
    return send_error(id, "EINVAL", "disk.checksum needs a string serial of at most 20 bytes");
  }
  if (json_find(payload, n, "offset", &v) != 0 || json_uint(&v, &offset) != 0 ||
      json_find(payload, n, "length", &v) != 0 || json_uint(&v, &length) != 0) {
    return send_error(id, "EINVAL", "disk.checksum needs integer offset and length");
  }
  if (length > (1ull << 30)) return send_error(id, "EINVAL", "length is over 1 GiB");
  struct blk* disk = disk_by_serial(serial);
  if (!disk) return send_error(id, "ENOENT", "no disk with that serial");
  u64 capacity = blk_capacity(disk);
  if (offset > capacity || length > capacity - offset) return send_error(id, "EINVAL", "range is beyond the end of the disk");
  u32 crc = 0;
  u64 pos = offset;
  u64 end = offset + length;
  while (pos < end) {
    // Read whole sectors around [pos, end) in chunks; checksum the part in range.
    u64 sector = pos / 512;
    u64 chunk_start = sector * 512;
    u64 chunk_len = CHECKSUM_CHUNK;
    if (chunk_start + chunk_len > capacity) chunk_len = capacity - chunk_start;
    if (blk_read(disk, sector, disk_chunk, (u32)chunk_len) != 0) return send_error(id, "EIO", "disk read failed");
    u64 from = pos - chunk_start;
    u64 take = chunk_len - from;
    if (take > end - pos) take = end - pos;
    crc = nv_crc32_update(crc, disk_chunk + from, take);
    pos += take;
  }
  begin_reply(id, "ok");
  put(",\"crc32\":");
  put_uint(crc);
  send_reply();
}

static void serve(const char* payload, u32 n) {
  struct json_value v;
  u64 id;
  if (json_find(payload, n, "id", &v) != 0 || json_uint(&v, &id) != 0) {
    return send_error(0, "EBADFRAME", "the frame is not a JSON object with an integer id");
  }
  char type[32];
  if (json_find(payload, n, "type", &v) != 0 || json_plain_string(&v, type, sizeof type) != 0) {
    return send_error(id, "EBADFRAME", "the request has no string type");
  }
  if (memcmp(type, "ping", 5) == 0) {
    begin_reply(id, "ok");
    put(",\"agent\":\"nodevisor-probe\",\"version\":1,\"pid\":1");
    return send_reply();
  }
  if (memcmp(type, "echo", 5) == 0) {
    if (json_find(payload, n, "data", &v) != 0 || v.kind != JSON_STRING) {
      return send_error(id, "EINVAL", "echo needs a string data");
    }
    begin_reply(id, "ok");
    put(",\"data\":");
    put_bytes(v.start, v.len);  // the string token as it came, escapes and all
    return send_reply();
  }
  if (memcmp(type, "disk.checksum", 14) == 0) return serve_checksum(id, payload, n);
  if (memcmp(type, "net.config", 11) == 0) { char f[NET_REPLY_MAX]; const char* bad = net_config(payload, n, f, sizeof f); if (bad) return send_error(id, "EINVAL", bad); begin_reply(id, "ok"); put(f); return send_reply(); }
  if (memcmp(type, "probe.generation", 17) == 0) { char f[PROBE_GENERATION_FIELDS_MAX]; probe_generation_fields(f, sizeof f); begin_reply(id, "ok"); put(f); return send_reply(); }
  if (memcmp(type, "probe.fault", 12) == 0) return probe_fault(payload, n), send_error(id, "EINVAL", "probe.fault needs kind triple-fault, i8042-reset or internal-error");
  if (memcmp(type, "probe.hostile", 14) == 0) { void hostile_run(const char*, u32); hostile_run(payload, n); }  // tests only (hostile.c)
  send_error(id, "ENOTSUP", "the probe guest serves ping, echo and disk.checksum");
}

// Feeds received bytes into frame assembly; serves each complete frame.
static void feed(const u8* data, u32 n) {
  while (n > 0) {
    if (skip_remaining) {
      u32 k = n < skip_remaining ? n : skip_remaining;
      skip_remaining -= k;
      data += k;
      n -= k;
      continue;
    }
    if (have < NV_FRAME_HEADER_SIZE) {
      frame[have++] = *data++;
      n--;
      if (have == NV_FRAME_HEADER_SIZE) {
        enum nv_frame_status st = nv_frame_get_header(frame, &payload_len);
        if (st != NV_FRAME_OK) {
          skip_remaining = payload_len;
          have = 0;
          send_error(0, "EFRAME", "frame length out of range; skipped");
        }
      }
      continue;
    }
    u32 want = NV_FRAME_HEADER_SIZE + payload_len - have;
    u32 k = n < want ? n : want;
    memcpy(frame + have, data, k);
    have += k;
    data += k;
    n -= k;
    if (have == NV_FRAME_HEADER_SIZE + payload_len) {
      serve((const char*)frame + NV_FRAME_HEADER_SIZE, payload_len);
      have = 0;
    }
  }
}

int agent_poll(void) {
  if (!have_console) return 0;
  int worked = 0;
  u16 head;
  u32 len;
  while (vq_take_used(&console.q[0], &head, &len)) {
    if (head < VQ_SIZE) {
      feed(rx_buffers[head], len <= RX_BUF_SIZE ? len : RX_BUF_SIZE);
      post_rx(head);
    }
    worked = 1;
  }
  if (worked) vq_notify(&console.dev, 0);
  return worked;
}
