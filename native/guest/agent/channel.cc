#include "channel.h"

#include <unistd.h>

#include <cerrno>

#include "guest/protocol/frame.h"
#include "log.h"

namespace nodevisor::agent {

Channel::ReadResult Channel::read_some(const std::function<void(std::string_view)>& on_frame,
                                       const std::function<void(uint32_t)>& on_bad_frame) {
  char buffer[64 * 1024];
  ssize_t n = ::read(fd_, buffer, sizeof buffer);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return ReadResult::WouldBlock;
    log("channel read failed: errno %d", errno);
    return ReadResult::Closed;
  }
  if (n == 0) return ReadResult::Closed;
  consume(buffer, static_cast<size_t>(n), on_frame, on_bad_frame);
  return ReadResult::Ok;
}

void Channel::consume(const char* data, size_t size, const std::function<void(std::string_view)>& on_frame,
                      const std::function<void(uint32_t)>& on_bad_frame) {
  while (size > 0) {
    if (skip_ > 0) {
      size_t drop = skip_ < size ? static_cast<size_t>(skip_) : size;
      skip_ -= drop;
      data += drop;
      size -= drop;
      continue;
    }
    // Append at most what completes the current frame, so in_ stays within one frame.
    size_t want;
    if (in_.size() < NV_FRAME_HEADER_SIZE) {
      want = NV_FRAME_HEADER_SIZE - in_.size();
    } else {
      uint32_t length = 0;
      nv_frame_get_header(reinterpret_cast<const unsigned char*>(in_.data()), &length);
      want = NV_FRAME_HEADER_SIZE + length - in_.size();
    }
    size_t take = want < size ? want : size;
    in_.append(data, take);
    data += take;
    size -= take;
    if (in_.size() < NV_FRAME_HEADER_SIZE) continue;
    uint32_t length = 0;
    if (nv_frame_get_header(reinterpret_cast<const unsigned char*>(in_.data()), &length) != NV_FRAME_OK) {
      in_.clear();
      skip_ = length;
      on_bad_frame(length);
      continue;
    }
    if (in_.size() == NV_FRAME_HEADER_SIZE + length) {
      std::string frame;
      frame.swap(in_);
      on_frame(std::string_view(frame).substr(NV_FRAME_HEADER_SIZE));
    }
  }
}

void Channel::send(std::string payload) {
  unsigned char header[NV_FRAME_HEADER_SIZE];
  if (nv_frame_put_header(header, payload.size()) != NV_FRAME_OK) {
    log("dropping an outgoing frame of %zu bytes (over the protocol maximum)", payload.size());
    return;
  }
  payload.insert(0, reinterpret_cast<const char*>(header), NV_FRAME_HEADER_SIZE);
  queued_ += payload.size();
  out_.push_back(std::move(payload));
}

bool Channel::flush() {
  while (!out_.empty()) {
    const std::string& front = out_.front();
    ssize_t n = ::write(fd_, front.data() + out_offset_, front.size() - out_offset_);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      return false;
    }
    out_offset_ += static_cast<size_t>(n);
    queued_ -= static_cast<size_t>(n);
    if (out_offset_ == front.size()) {
      out_.pop_front();
      out_offset_ = 0;
    }
  }
  return true;
}

}  // namespace nodevisor::agent
