#include "vmm/devices/legacy/wait_port.h"

#include <cstring>

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {
constexpr uint32_t kStateTag = state_tag("WAIT");
constexpr uint32_t kStateVersion = 1;
}  // namespace

bool WaitPort::post(uint32_t word) {
  {
    std::lock_guard lock(mutex_);
    if (words_.size() >= kQueueCapacity) return false;
    words_.push_back(word);
  }
  changed_.notify_one();
  return true;
}

void WaitPort::post_coalesced(uint32_t word) {
  {
    std::lock_guard lock(mutex_);
    for (uint32_t queued : words_) {
      if (queued == word) return;
    }
    if (words_.size() >= kQueueCapacity) return;
    words_.push_back(word);
  }
  changed_.notify_one();
}

void WaitPort::set_held(bool held) {
  {
    std::lock_guard lock(mutex_);
    held_ = held;
  }
  changed_.notify_all();
}

void WaitPort::read(uint64_t offset, std::span<uint8_t> data) {
  uint32_t word = 0;
  if (offset == 0) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, idle_timeout_, [this] { return held_ || !words_.empty(); });
    if (!held_ && !words_.empty()) {
      word = words_.front();
      words_.pop_front();
    }
  }
  // Narrower or offset reads see the matching bytes of the word (little-endian).
  std::memset(data.data(), 0, data.size());
  std::memcpy(data.data(), &word, std::min(data.size(), sizeof word));
}

void WaitPort::write(uint64_t, std::span<const uint8_t>) {}

std::vector<uint8_t> WaitPort::save() const {
  std::lock_guard lock(mutex_);
  StateWriter w(kStateTag, kStateVersion);
  w.put(static_cast<uint32_t>(words_.size()));
  for (uint32_t word : words_) w.put(word);
  return w.take();
}

Status WaitPort::restore(std::span<const uint8_t> state) {
  StateReader r(state);
  NV_TRY(r.expect_header(kStateTag, kStateVersion, "wait port"));
  uint32_t count = 0;
  if (!r.get(count) || count > kQueueCapacity) return truncated_state("wait port");
  std::deque<uint32_t> words;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t word;
    if (!r.get(word)) return truncated_state("wait port");
    words.push_back(word);
  }
  if (!r.at_end()) return truncated_state("wait port");
  std::lock_guard lock(mutex_);
  words_ = std::move(words);
  return {};
}

}  // namespace nodevisor::vmm
