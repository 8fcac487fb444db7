// Test driver for the agent's JSON reader/writer (built and run by test/native/guest-protocol.test.ts,
// with ASan and UBSan when available). Reads inputs from stdin as frames (the framing of
// frame.h: u32 LE length + bytes) and prints one line per input: "ok <re-serialized JSON>" or
// "err <message>". Frames with a refused length print "frame <status> <length>" and are skipped,
// as the agent does. Single-threaded.
#include <cstdio>
#include <string>

#include "guest/protocol/frame.h"
#include "guest/protocol/json.h"

namespace {

void write_value(nodevisor::json::Writer& w, const nodevisor::json::Value& v) {
  using Kind = nodevisor::json::Value::Kind;
  switch (v.kind()) {
    case Kind::Null: w.null(); break;
    case Kind::Bool: w.boolean(v.as_bool()); break;
    case Kind::Number:
      if (auto n = v.as_int()) {
        w.number(*n);
      } else {
        char text[64];
        std::snprintf(text, sizeof text, "double:%.17g", v.as_double());
        w.string(text);
      }
      break;
    case Kind::String: w.string(v.as_string()); break;
    case Kind::Array:
      w.begin_array();
      for (const auto& item : v.items()) write_value(w, item);
      w.end_array();
      break;
    case Kind::Object:
      w.begin_object();
      for (const auto& [k, m] : v.members()) {
        w.key(k);
        write_value(w, m);
      }
      w.end_object();
      break;
  }
}

}  // namespace

int main() {
  std::string input;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, stdin)) > 0) input.append(buffer, n);
  size_t pos = 0;
  while (input.size() - pos >= NV_FRAME_HEADER_SIZE) {
    uint32_t length = 0;
    auto status = nv_frame_get_header(reinterpret_cast<const unsigned char*>(input.data() + pos), &length);
    pos += NV_FRAME_HEADER_SIZE;
    if (status != NV_FRAME_OK) {
      std::printf("frame %d %u\n", static_cast<int>(status), length);
      pos += std::min<size_t>(length, input.size() - pos);
      continue;
    }
    if (input.size() - pos < length) {
      std::printf("short\n");
      break;
    }
    auto result = nodevisor::json::parse(std::string_view(input).substr(pos, length));
    pos += length;
    if (!result.value) {
      std::printf("err %s\n", result.error.c_str());
      continue;
    }
    nodevisor::json::Writer w;
    write_value(w, *result.value);
    std::string text = w.take();
    std::printf("ok %s\n", nodevisor::json::valid_utf8(text) ? text.c_str() : "<invalid utf-8 out>");
  }
  return 0;
}
