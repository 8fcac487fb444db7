// The memory routines a freestanding C compiler may emit calls to. `rep movsb`/`rep stosb`:
// one instruction each, which matters where CPL-0 instructions are emulated one by one.
#include "probe.h"

void* memcpy(void* dst, const void* src, size_t n) {
  void* d = dst;
  __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  u8* d = (u8*)dst;
  const u8* s = (const u8*)src;
  if (d <= s || d >= s + n) return memcpy(dst, src, n);
  while (n > 0) {
    n--;
    d[n] = s[n];
  }
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  void* d = dst;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const u8* x = (const u8*)a;
  const u8* y = (const u8*)b;
  for (size_t i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}
