// Just enough JSON for the probe's requests: the top-level members of one object, each value
// returned as a span of the input (a string token keeps its quotes and escapes, so it can be
// copied into a reply as it is). Bounded: nesting is skipped up to a fixed depth, and every
// read stays inside the given length.
#pragma once

#include "probe.h"

enum json_kind { JSON_NONE = 0, JSON_STRING, JSON_NUMBER, JSON_OTHER };

struct json_value {
  enum json_kind kind;
  const char* start;  // for JSON_STRING: the opening quote
  u64 len;            // bytes, quotes included
};

// Finds member `key` (plain ASCII, no escapes) of the object in text[0..n). Returns 0 and
// fills *out when found; -1 when absent; -2 when the text is not a well-formed object.
int json_find(const char* text, u64 n, const char* key, struct json_value* out);
// A non-negative integer value that fits in 53 bits; -1 otherwise.
int json_uint(const struct json_value* v, u64* out);
// Copies a string value without escapes into out (at most cap-1 bytes, NUL-terminated);
// -1 when it is not a string, has escapes, or does not fit.
int json_plain_string(const struct json_value* v, char* out, u64 cap);
