// probe.generation: what makes a clone tell itself apart from its template. The VM generation
// id is read at every request, never cached, from where the VMM keeps it in guest memory
// (PROBE_VM_GENERATION_GPA, which the probe's ELF note names; the VMM writes each VM's own id
// there, a restored one's included), so a clone reports its own id, not the one the template
// saw. A load, where the generation port (PROBE_VM_GENERATION_PORT) costs two VM exits.
// `asked` counts these requests in guest memory: it is saved in a snapshot with the rest of
// RAM, so a restored VM goes on counting from where the snapshot stopped.
#include "generation.h"

static u64 asked;

static u64 read_generation(void) { return *(volatile const u64*)PROBE_VM_GENERATION_GPA; }

static u32 append(char* out, u32 at, u32 room, const char* s) {
  while (*s && at + 1 < room) out[at++] = *s++;
  return at;
}

void probe_generation_fields(char* out, u32 room) {
  static const char hex[] = "0123456789abcdef";
  const u64 generation = read_generation();
  asked++;
  u32 at = append(out, 0, room, ",\"generation\":\"");
  for (int shift = 60; shift >= 0 && at + 1 < room; shift -= 4) out[at++] = hex[(generation >> shift) & 0xf];
  at = append(out, at, room, "\",\"asked\":");
  char digits[24];
  int n = 0;
  u64 v = asked;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n && at + 1 < room) out[at++] = digits[--n];
  out[at] = 0;
}
