// Compiled by test/native/guest-protocol.test.ts with -ffreestanding -nostdlib as C11, the way
// the probe guest builds: proves frame.h needs no libc (the object must have no undefined symbols).
#include "guest/protocol/frame.h"

int frame_roundtrip(unsigned length) {
  unsigned char header[NV_FRAME_HEADER_SIZE];
  uint32_t back = 0;
  if (nv_frame_put_header(header, length) != NV_FRAME_OK) return -1;
  if (nv_frame_get_header(header, &back) != NV_FRAME_OK) return -2;
  return back == length ? 0 : -3;
}
