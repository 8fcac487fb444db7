// The agent channel: framed JSON over one non-blocking fd (/dev/hvc0 in a guest, one end of a
// socketpair in host-mode tests). Owned and driven by the main loop thread only.
//
// Both directions are bounded: the input buffer never holds more than one frame plus one read
// chunk (an oversized frame is skipped as it streams by, never buffered), and the output queue is
// reported through queued() so the main loop stops producing stdio events (and, beyond a hard
// limit, stops reading requests) while the host does not read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

namespace nodevisor::agent {

class Channel {
 public:
  enum class ReadResult { Ok, WouldBlock, Closed };

  // Takes ownership of nothing: the caller keeps `fd` open while the Channel exists.
  explicit Channel(int fd) : fd_(fd) {}

  int fd() const { return fd_; }

  // Reads once (up to 64 KiB) and hands every complete frame's payload to `on_frame`, and every
  // refused header (length 0, 1 or over the maximum) to `on_bad_frame` with its length.
  ReadResult read_some(const std::function<void(std::string_view)>& on_frame,
                       const std::function<void(uint32_t)>& on_bad_frame);

  // Queues one frame. A payload over the maximum is a bug in the agent: it is dropped and logged.
  void send(std::string payload);

  // Writes as much of the queue as the fd takes. Returns false when the peer is gone.
  bool flush();

  size_t queued() const { return queued_; }

 private:
  void consume(const char* data, size_t size, const std::function<void(std::string_view)>& on_frame,
               const std::function<void(uint32_t)>& on_bad_frame);

  int fd_;
  std::string in_;
  uint64_t skip_ = 0;  // bytes of a refused frame still to discard
  std::deque<std::string> out_;
  size_t out_offset_ = 0;  // bytes of out_.front() already written
  size_t queued_ = 0;
};

}  // namespace nodevisor::agent
