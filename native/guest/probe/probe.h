// What every part of the probe shares: fixed-width types, port and MMIO access, and the few
// libc routines the compiler may call on its own (memcpy, memset, memmove, memcmp). The probe
// is freestanding: no libc, no interrupts (it polls), one vCPU.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "probe_abi.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

static inline void outb(u16 port, u8 value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline u32 inl(u16 port) {
  u32 value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "d"(port));
  return value;
}

// MMIO: one access of exactly this width (volatile), ordered with the compiler.
static inline u32 mmio_read32(u64 addr) { return *(volatile u32*)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32*)addr = v; }
static inline u8 mmio_read8(u64 addr) { return *(volatile u8*)addr; }

// The device reads and writes guest memory from another host thread: order our ring writes
// and reads against theirs (x86 is TSO; a compiler barrier plus mfence where it matters).
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
int memcmp(const void* a, const void* b, size_t n);

void serial_write(const char* text);
// Parks on the wait port; returns the word the VMM posted (0: timeout or nothing).
u32 wait_for_work(void);
