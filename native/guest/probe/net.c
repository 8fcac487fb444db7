// virtio-net for the probe (see net.h). One receive and one transmit queue of VQ_SIZE
// buffers each; receive buffers are reposted as soon as a frame is handled, transmit buffers
// are reused in order (the device completes them in order) and never raise an interrupt.
// Runs on the probe's only vCPU, from the main loop's poll.
#include "net.h"

#include "json_scan.h"
#include "virtio.h"

#define VIRTIO_ID_NET 1
#define NET_HDR 12        // virtio_net_hdr with num_buffers (VERSION_1)
#define NET_BUF 2048      // header + a 1514-byte Ethernet frame, rounded up
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IP_PROTO_ICMP 1
#define IP_PROTO_UDP 17
#define UDP_ECHO_PORT 7
#define VRING_AVAIL_F_NO_INTERRUPT 1

static struct virtio_dev dev;
static struct virtqueue q[2];  // 0: receive, 1: transmit
static int up;                 // 1: the device is running; -1: there is none
static u8 mac[6];
static u8 ip[4];
static int configured;
static u8 rx_buf[VQ_SIZE][NET_BUF] __attribute__((aligned(4096)));
static u8 tx_buf[VQ_SIZE][NET_BUF] __attribute__((aligned(4096)));
static u16 tx_next;      // transmit buffers published (free-running)
static u16 tx_inflight;  // published and not yet returned
static int tx_notify;    // frames published since the last notification

static u16 get16(const u8* p) { return (u16)((p[0] << 8) | p[1]); }
static void put16(u8* p, u16 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}

// The Internet checksum (RFC 1071) of `n` bytes.
static u16 checksum(const u8* p, u32 n) {
  u32 sum = 0;
  for (; n > 1; n -= 2, p += 2) sum += get16(p);
  if (n) sum += (u32)p[0] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (u16)~sum;
}

static void post_rx(u16 index) {
  u64 addr = (u64)rx_buf[index];
  u32 len = NET_BUF;
  vq_publish(&q[0], index, &addr, &len, 1, 0);
}

// (Re)starts the first virtio-net device: a full reset and handshake, all receive buffers
// offered, transmit state cleared. Every net.config does it, so a device a hostile request
// broke (DEVICE_NEEDS_RESET) serves again after the next plain one.
static int bring_up(void) {
  struct virtio_dev found[VIRTIO_MMIO_MAX_DEVICES];
  int n = virtio_discover(found, VIRTIO_MMIO_MAX_DEVICES);
  up = -1;
  for (int i = 0; i < n; i++) {
    if (found[i].device_id != VIRTIO_ID_NET) continue;
    dev = found[i];
    if (virtio_init(&dev, q, 2) != 0) return -1;
    for (int b = 0; b < 6; b++) mac[b] = mmio_read8(dev.base + 0x100 + (u64)b);
    q[1].avail.flags = VRING_AVAIL_F_NO_INTERRUPT;
    tx_next = tx_inflight = 0;
    tx_notify = 0;
    for (u16 b = 0; b < VQ_SIZE; b++) post_rx(b);
    vq_notify(&dev, 0);
    up = 1;
    return 0;
  }
  return -1;
}

// Puts `head` on the avail ring of `vq` without touching descriptors (for hostile requests).
static void publish_raw(struct virtqueue* vq, u16 head) {
  vq->avail.ring[vq->avail_idx % VQ_SIZE] = head;
  barrier();
  vq->avail_idx++;
  vq->avail.idx = vq->avail_idx;
  mb();
}

// What net.config's `hostile` asks the driver to do to the device, for tests: a transmit chain
// that loops, a transmit buffer outside guest RAM, or a receive avail index far ahead of the
// ring (the device must then stop serving until the next reset).
static const char* misbehave(const char* what) {
  const u16 slot = tx_next % VQ_SIZE;
  if (memcmp(what, "tx-loop", 8) == 0) {
    q[1].desc[slot] = (struct vq_desc){(u64)tx_buf[slot], NET_HDR, 1 /* NEXT */, slot};
  } else if (memcmp(what, "tx-outside", 11) == 0) {
    q[1].desc[slot] = (struct vq_desc){0xfffffffff000ull, 4096, 0, 0};
  } else if (memcmp(what, "rx-avail", 9) == 0) {
    q[0].avail.idx = (u16)(q[0].avail_idx + 1000);
    mb();
    vq_notify(&dev, 0);
    return 0;
  } else {
    return "net.config: hostile must be tx-loop, tx-outside or rx-avail";
  }
  barrier();
  publish_raw(&q[1], slot);
  tx_next++;
  tx_inflight++;
  vq_notify(&dev, 1);
  return 0;
}

// Queues `len` bytes of Ethernet frame for sending (notified at the end of the poll).
static void send_frame(const u8* frame, u32 len) {
  u16 head;
  u32 used;
  while (tx_inflight > 0 && vq_take_used(&q[1], &head, &used)) tx_inflight--;
  if (tx_inflight >= VQ_SIZE || len > NET_BUF - NET_HDR) return;  // full: dropped, as a NIC would
  const u16 slot = tx_next % VQ_SIZE;
  memset(tx_buf[slot], 0, NET_HDR);
  memcpy(tx_buf[slot] + NET_HDR, frame, len);
  u64 addr = (u64)tx_buf[slot];
  u32 total = NET_HDR + len;
  vq_publish(&q[1], slot, &addr, &total, 1, 1);
  tx_next++;
  tx_inflight++;
  tx_notify = 1;
}

static u8 reply[NET_BUF];

static void answer_arp(const u8* f, u32 len) {
  const u8* a = f + ETH_HLEN;
  if (len < ETH_HLEN + 28 || get16(a) != 1 || get16(a + 2) != ETH_P_IP || a[4] != 6 || a[5] != 4) return;
  if (get16(a + 6) != 1 || memcmp(a + 24, ip, 4) != 0) return;  // a request for our address only
  memcpy(reply, f + 6, 6);  // to the asker
  memcpy(reply + 6, mac, 6);
  put16(reply + 12, ETH_P_ARP);
  u8* r = reply + ETH_HLEN;
  memcpy(r, a, 6);  // htype, ptype, hlen, plen
  put16(r + 6, 2);
  memcpy(r + 8, mac, 6);
  memcpy(r + 14, ip, 4);
  memcpy(r + 18, a + 8, 10);  // the asker's MAC and address
  send_frame(reply, ETH_HLEN + 28);
}

static void answer_ipv4(const u8* f, u32 len) {
  const u8* h = f + ETH_HLEN;
  if (len < ETH_HLEN + 20 || (h[0] >> 4) != 4) return;
  const u32 ihl = (u32)(h[0] & 15) * 4;
  const u32 total = get16(h + 2);
  if (ihl < 20 || total < ihl || total > len - ETH_HLEN || memcmp(h + 16, ip, 4) != 0) return;
  if ((get16(h + 6) & 0x3fff) != 0) return;  // a fragment
  const u8* l4 = h + ihl;
  const u32 l4_len = total - ihl;
  const int icmp_echo = h[9] == IP_PROTO_ICMP && l4_len >= 8 && l4[0] == 8 && l4[1] == 0;
  const int udp_echo = h[9] == IP_PROTO_UDP && l4_len >= 8 && get16(l4 + 2) == UDP_ECHO_PORT;
  if (!icmp_echo && !udp_echo) return;
  memcpy(reply, f + 6, 6);
  memcpy(reply + 6, mac, 6);
  put16(reply + 12, ETH_P_IP);
  u8* rh = reply + ETH_HLEN;
  memcpy(rh, h, total);
  memcpy(rh + 12, h + 16, 4);
  memcpy(rh + 16, h + 12, 4);
  rh[8] = 64;  // TTL
  put16(rh + 10, 0);
  put16(rh + 10, checksum(rh, ihl));
  u8* r4 = rh + ihl;
  if (icmp_echo) {
    r4[0] = 0;  // echo reply
    put16(r4 + 2, 0);
    put16(r4 + 2, checksum(r4, l4_len));
  } else {
    put16(r4, get16(l4 + 2));
    put16(r4 + 2, get16(l4));
    put16(r4 + 6, 0);  // no UDP checksum (allowed over IPv4)
  }
  send_frame(reply, ETH_HLEN + total);
}

static void handle_frame(const u8* f, u32 len) {
  if (len < ETH_HLEN) return;
  static const u8 broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  if (memcmp(f, mac, 6) != 0 && memcmp(f, broadcast, 6) != 0) return;
  const u16 type = get16(f + 12);
  if (type == ETH_P_ARP) answer_arp(f, len);
  if (type == ETH_P_IP) answer_ipv4(f, len);
}

int net_poll(void) {
  if (up <= 0) return 0;
  int worked = 0;
  u16 head;
  u32 len;
  while (vq_take_used(&q[0], &head, &len)) {
    if (head < VQ_SIZE) {
      if (configured && len > NET_HDR && len <= NET_BUF) handle_frame(rx_buf[head] + NET_HDR, len - NET_HDR);
      post_rx(head);
    }
    worked = 1;
  }
  if (worked) vq_notify(&dev, 0);
  if (tx_notify) {
    tx_notify = 0;
    vq_notify(&dev, 1);
  }
  return worked;
}

// "a.b.c.d" → 4 bytes; -1 when malformed.
static int parse_ipv4(const char* s, u8 out[4]) {
  for (int i = 0; i < 4; i++) {
    u32 v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 4) {
      v = v * 10 + (u32)(*s++ - '0');
      digits++;
    }
    if (digits == 0 || digits > 3 || v > 255) return -1;
    out[i] = (u8)v;
    if (i < 3 && *s++ != '.') return -1;
  }
  return *s == 0 ? 0 : -1;
}

static int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_mac(const char* s, u8 out[6]) {
  for (int i = 0; i < 6; i++) {
    int hi = hex(s[0]), lo = hex(s[1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (u8)(hi * 16 + lo);
    s += 2;
    if (i < 5 && *s++ != ':') return -1;
  }
  return *s == 0 ? 0 : -1;
}

// Appends `s` to out (bounded; always NUL-terminated).
static void append(char* out, u32 room, u32* at, const char* s) {
  while (*s && *at + 1 < room) out[(*at)++] = *s++;
  out[*at] = 0;
}

static void append_uint(char* out, u32 room, u32* at, u32 v) {
  char digits[11];
  int n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  char s[12];
  for (int i = 0; i < n; i++) s[i] = digits[n - 1 - i];
  s[n] = 0;
  append(out, room, at, s);
}

const char* net_config(const char* payload, u32 n, char* out, u32 room) {
  struct json_value v;
  char text[24];
  u8 new_ip[4], new_mac[6];
  if (json_find(payload, n, "ip", &v) != 0 || json_plain_string(&v, text, sizeof text) != 0 ||
      parse_ipv4(text, new_ip) != 0) {
    return "net.config needs ip, an IPv4 address like 10.0.0.2";
  }
  const int with_mac = json_find(payload, n, "mac", &v) == 0;
  if (with_mac && (json_plain_string(&v, text, sizeof text) != 0 || parse_mac(text, new_mac) != 0)) {
    return "net.config: mac must look like 02:00:00:00:00:01";
  }
  char hostile[16];
  const int with_hostile = json_find(payload, n, "hostile", &v) == 0;
  if (with_hostile && json_plain_string(&v, hostile, sizeof hostile) != 0) return "net.config: hostile must be a string";
  if (bring_up() != 0) return "the VM has no virtio-net device";
  if (with_hostile) {
    const char* bad = misbehave(hostile);
    if (bad) return bad;
  }
  memcpy(ip, new_ip, 4);
  if (with_mac) memcpy(mac, new_mac, 6);
  configured = 1;
  u32 at = 0;
  out[0] = 0;
  append(out, room, &at, ",\"mac\":\"");
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 6; i++) {
    char b[4] = {digits[mac[i] >> 4], digits[mac[i] & 15], i < 5 ? ':' : 0, 0};
    append(out, room, &at, b);
  }
  append(out, room, &at, "\",\"ip\":\"");
  for (int i = 0; i < 4; i++) {
    append_uint(out, room, &at, ip[i]);
    if (i < 3) append(out, room, &at, ".");
  }
  append(out, room, &at, "\"");
  return 0;
}
