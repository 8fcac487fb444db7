#include "json_scan.h"

#define MAX_DEPTH 32

static u64 skip_ws(const char* t, u64 n, u64 i) {
  while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
  return i;
}

// End (one past) of the string token starting at t[i] == '"', or 0 when unterminated.
static u64 string_end(const char* t, u64 n, u64 i) {
  for (i++; i < n; i++) {
    if (t[i] == '\\') {
      i++;
      continue;
    }
    if (t[i] == '"') return i + 1;
    if ((u8)t[i] < 0x20) return 0;
  }
  return 0;
}

// End of the value starting at t[i], or 0 when malformed. Nested values are skipped by
// counting brackets outside strings, up to MAX_DEPTH.
static u64 value_end(const char* t, u64 n, u64 i, enum json_kind* kind) {
  if (i >= n) return 0;
  if (t[i] == '"') {
    *kind = JSON_STRING;
    return string_end(t, n, i);
  }
  if (t[i] == '{' || t[i] == '[') {
    *kind = JSON_OTHER;
    int depth = 0;
    for (; i < n; i++) {
      if (t[i] == '"') {
        u64 e = string_end(t, n, i);
        if (e == 0) return 0;
        i = e - 1;
      } else if (t[i] == '{' || t[i] == '[') {
        if (++depth > MAX_DEPTH) return 0;
      } else if (t[i] == '}' || t[i] == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return 0;
  }
  *kind = (t[i] == '-' || (t[i] >= '0' && t[i] <= '9')) ? JSON_NUMBER : JSON_OTHER;
  u64 start = i;
  while (i < n && t[i] != ',' && t[i] != '}' && t[i] != ' ' && t[i] != '\n' && t[i] != '\r' && t[i] != '\t') i++;
  return i > start ? i : 0;
}

int json_find(const char* t, u64 n, const char* key, struct json_value* out) {
  u64 klen = 0;
  while (key[klen]) klen++;
  u64 i = skip_ws(t, n, 0);
  if (i >= n || t[i] != '{') return -2;
  i = skip_ws(t, n, i + 1);
  if (i < n && t[i] == '}') return -1;
  for (;;) {
    if (i >= n || t[i] != '"') return -2;
    u64 kend = string_end(t, n, i);
    if (kend == 0) return -2;
    int match = kend - i - 2 == klen && memcmp(t + i + 1, key, klen) == 0;
    i = skip_ws(t, n, kend);
    if (i >= n || t[i] != ':') return -2;
    i = skip_ws(t, n, i + 1);
    enum json_kind kind = JSON_NONE;
    u64 vend = value_end(t, n, i, &kind);
    if (vend == 0) return -2;
    if (match) {
      out->kind = kind;
      out->start = t + i;
      out->len = vend - i;
      return 0;
    }
    i = skip_ws(t, n, vend);
    if (i < n && t[i] == ',') {
      i = skip_ws(t, n, i + 1);
      continue;
    }
    if (i < n && t[i] == '}') return -1;
    return -2;
  }
}

int json_uint(const struct json_value* v, u64* out) {
  if (v->kind != JSON_NUMBER || v->len == 0 || v->len > 16) return -1;
  u64 x = 0;
  for (u64 i = 0; i < v->len; i++) {
    char c = v->start[i];
    if (c < '0' || c > '9') return -1;
    x = x * 10 + (u64)(c - '0');
  }
  if (x > (1ull << 53) - 1) return -1;
  *out = x;
  return 0;
}

int json_plain_string(const struct json_value* v, char* out, u64 cap) {
  if (v->kind != JSON_STRING || v->len < 2 || v->len - 2 >= cap) return -1;
  for (u64 i = 1; i + 1 < v->len; i++) {
    if (v->start[i] == '\\') return -1;
    out[i - 1] = v->start[i];
  }
  out[v->len - 2] = 0;
  return 0;
}
