// libFuzzer target: the guest agent's input path as the host (untrusted from a container's
// point of view, and a source of garbage when buggy) feeds it: bytes through a real socketpair
// into Channel (framing, resync after refused lengths, frames split across reads), each frame
// through the JSON parser, then the request fields every handler reads (ids, paths, mount
// options, the process object with its privileges, base64 data). Nothing may crash, leak, read
// out of bounds (ASan), overflow (UBSan) or throw anything but AgentError.
//
// Input: byte 0 picks the chunk size the bytes are written in (1..256), the rest is the stream.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "guest/agent/channel.h"
#include "guest/agent/errors.h"
#include "guest/agent/request.h"
#include "guest/agent/storage.h"
#include "guest/protocol/base64.h"
#include "guest/protocol/json.h"

using namespace nodevisor;
using namespace nodevisor::agent;

namespace {

// What the agent's handlers read from a request, each behind its own catch like on_frame.
void read_request(const json::Value& message) {
  Fields f(message);
  auto attempt = [](auto&& read) {
    try {
      read();
    } catch (const AgentError& e) {
      if (e.code.empty()) std::abort();  // every refusal names a code
    }
  };
  attempt([&] { (void)f.id("containerId"); });
  attempt([&] { (void)f.optional_id("execId"); });
  attempt([&] { (void)f.path("mountPoint"); });
  attempt([&] { (void)split_mount_options(f.string_array("options", 64, false)); });
  attempt([&] { (void)f.integer("signal", 1, 64); });
  attempt([&] { (void)f.optional_bool("eof", false); });
  attempt([&] {
    ProcessSpec spec = parse_process(f);
    if (spec.args.empty()) std::abort();  // parse_process refuses an empty args
  });
  attempt([&] {
    auto data = f.optional_string("data");
    if (!data) return;
    auto bytes = base64::decode(*data);
    // What decodes must encode back to something that decodes to the same bytes.
    if (bytes && base64::decode(base64::encode(*bytes)) != bytes) std::abort();
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t chunk = static_cast<size_t>(data[0]) + 1;
  ++data;
  --size;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  {
    Channel channel(sv[1]);
    auto on_frame = [](std::string_view payload) {
      json::ParseResult parsed = json::parse(payload);
      if (!parsed.value) {
        if (parsed.error.empty()) std::abort();
        return;
      }
      if (parsed.value->is_object()) read_request(*parsed.value);
    };
    auto on_bad_frame = [](uint32_t) {};
    for (size_t pos = 0; pos < size; pos += chunk) {
      size_t n = size - pos < chunk ? size - pos : chunk;
      if (::write(sv[0], data + pos, n) != static_cast<ssize_t>(n)) break;
      while (channel.read_some(on_frame, on_bad_frame) == Channel::ReadResult::Ok) {
      }
    }
  }
  ::close(sv[0]);
  ::close(sv[1]);
  return 0;
}
