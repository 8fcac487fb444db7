// Framing of the agent protocol (docs/protocol.md): a u32 little-endian payload length, then that
// many bytes of UTF-8 JSON. Header-only and freestanding: it uses only <stdint.h> and <stddef.h>
// (both provided by the compiler without libc), so the probe guest (CPL 3, no libc) and the agent
// (C++20, static glibc) share this one definition. Any thread may call these; they are pure.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define NV_FRAME_HEADER_SIZE 4u
// Largest payload either side sends or buffers. Large enough for a 768 KiB base64 chunk plus its
// JSON, small enough that a guest with 128 MiB can keep a few in flight.
#define NV_FRAME_MAX_PAYLOAD (1u << 20)
// Smallest JSON object: "{}".
#define NV_FRAME_MIN_PAYLOAD 2u
#define NV_PROTOCOL_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

// What a header says about the frame that follows.
enum nv_frame_status {
  NV_FRAME_OK = 0,         // length is within [NV_FRAME_MIN_PAYLOAD, NV_FRAME_MAX_PAYLOAD]
  NV_FRAME_TOO_SMALL = 1,  // 0 or 1: cannot be a JSON object; skip it
  NV_FRAME_TOO_LARGE = 2,  // over the maximum: skip `length` bytes without buffering them
};

// Writes the header for a payload of `length` bytes into out[0..3]. Returns NV_FRAME_OK, or an
// error status (and writes nothing) when `length` is not a valid payload size: a sender never
// produces a frame the receiver must refuse.
static inline enum nv_frame_status nv_frame_put_header(unsigned char out[NV_FRAME_HEADER_SIZE],
                                                       size_t length) {
  if (length < NV_FRAME_MIN_PAYLOAD) return NV_FRAME_TOO_SMALL;
  if (length > NV_FRAME_MAX_PAYLOAD) return NV_FRAME_TOO_LARGE;
  out[0] = (unsigned char)(length & 0xffu);
  out[1] = (unsigned char)((length >> 8) & 0xffu);
  out[2] = (unsigned char)((length >> 16) & 0xffu);
  out[3] = (unsigned char)((length >> 24) & 0xffu);
  return NV_FRAME_OK;
}

// Reads a header (byte by byte, so no alignment or endianness assumption). Always stores the
// length, also for a bad frame, because the receiver needs it to skip the payload and stay in sync.
static inline enum nv_frame_status nv_frame_get_header(const unsigned char in[NV_FRAME_HEADER_SIZE],
                                                       uint32_t* length) {
  uint32_t n = (uint32_t)in[0] | ((uint32_t)in[1] << 8) | ((uint32_t)in[2] << 16) |
               ((uint32_t)in[3] << 24);
  *length = n;
  if (n < NV_FRAME_MIN_PAYLOAD) return NV_FRAME_TOO_SMALL;
  if (n > NV_FRAME_MAX_PAYLOAD) return NV_FRAME_TOO_LARGE;
  return NV_FRAME_OK;
}

#ifdef __cplusplus
}
#endif
