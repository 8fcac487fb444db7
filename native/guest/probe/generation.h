// The probe's `probe.generation` request: the VM generation id and a running count of the
// requests for it. See generation.c.
#pragma once

#include "probe.h"

// Room for `,"generation":"<16 hex>","asked":<u64>` and its NUL.
#define PROBE_GENERATION_FIELDS_MAX 64

// Writes the reply fields (JSON, each preceded by a comma) into `out`, NUL-terminated, and
// counts the request.
void probe_generation_fields(char* out, u32 room);
