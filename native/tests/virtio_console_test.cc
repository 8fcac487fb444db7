// virtio-console: both directions, and flow control when either side does not keep up.
#include <atomic>
#include <string>
#include <thread>

#include "tests/framework.h"
#include "tests/virtio_harness.h"
#include "vmm/devices/virtio/console/console_device.h"

namespace nodevisor::tests {

namespace {

struct ConsoleRig {
  std::shared_ptr<std::atomic<int>> output_ready = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> input_space = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<ConsoleDevice> dev;
  VirtioHarness h;
  MockQueue rx, tx;

  static std::shared_ptr<ConsoleDevice> make(std::shared_ptr<std::atomic<int>> ready, std::shared_ptr<std::atomic<int>> space) {
    ConsoleNotifications n{[ready] { ready->fetch_add(1); }, [space] { space->fetch_add(1); }};
    return std::move(ConsoleDevice::create("hvc0", std::move(n))).value();
  }
  ConsoleRig()
      : dev(make(output_ready, input_space)), h(dev), rx(h.mem, 0x10000, 64), tx(h.mem, 0x20000, 64) {}
};

bool wait_for(const std::function<bool()>& cond, int ms = 5000) {
  for (int i = 0; i < ms * 10; i++) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return cond();
}

}  // namespace

TEST(console_guest_output_reaches_the_host) {
  ConsoleRig r;
  REQUIRE(r.h.bring_up({&r.rx, &r.tx}));
  const std::string text = "hello from the guest";
  r.h.write_bytes(0x100000, text.data(), text.size());
  r.tx.add_chain({{0x100000, static_cast<uint32_t>(text.size()), false}});
  r.h.notify(1);
  CHECK(r.tx.wait_used(1));
  CHECK(wait_for([&] { return r.output_ready->load() == 1; }));
  auto out = r.dev->read_output(1000);
  CHECK(std::string(out.begin(), out.end()) == text);
}

TEST(console_host_input_fills_guest_buffers_when_they_come) {
  ConsoleRig r;
  REQUIRE(r.h.bring_up({&r.rx, &r.tx}));
  const std::string text = "ping from the host, longer than one buffer";
  CHECK_EQ(r.dev->write_input(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())),
           text.size());
  // No receive buffers yet: nothing delivered.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_EQ(r.rx.used_idx(), 0u);
  r.rx.add_chain({{0x100000, 16, true}}, 0);
  r.rx.add_chain({{0x100100, 64, true}}, 1);
  r.h.notify(0);
  CHECK(r.rx.wait_used(2));
  CHECK_EQ(r.rx.used_element(0).len, 16u);
  CHECK_EQ(r.rx.used_element(1).len, static_cast<uint32_t>(text.size() - 16));
  auto a = r.h.read_bytes(0x100000, 16);
  auto b = r.h.read_bytes(0x100100, text.size() - 16);
  CHECK(std::string(a.begin(), a.end()) + std::string(b.begin(), b.end()) == text);
}

TEST(console_stops_taking_guest_output_while_the_host_does_not_read) {
  ConsoleRig r;
  REQUIRE(r.h.bring_up({&r.rx, &r.tx}));
  // Each chain is 1 MiB (the most we accept); the 4 MiB buffer takes 4 of them at most.
  const uint32_t chunk = static_cast<uint32_t>(kMaxTxChainBytes);
  for (uint16_t i = 0; i < 8; i++) r.tx.add_chain({{0x100000, chunk, false}}, i);
  r.h.notify(1);
  CHECK(wait_for([&] { return r.tx.used_idx() >= 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const uint16_t taken = r.tx.used_idx();
  CHECK(taken < 8);
  // Reading drains the buffer and the device resumes on its own.
  size_t total = 0;
  CHECK(wait_for([&] {
    total += r.dev->read_output(1 << 20).size();
    return r.tx.used_idx() == 8 && total == 8ull * chunk;
  }));
  CHECK_EQ(total, 8ull * chunk);
}

TEST(console_takes_a_full_frame_and_drops_an_oversized_chain) {
  ConsoleRig r;
  REQUIRE(r.h.bring_up({&r.rx, &r.tx}));
  // The largest agent frame (4-byte header + 1 MiB payload) passes whole.
  r.tx.add_chain({{0x100000, static_cast<uint32_t>(kMaxTxChainBytes), false}}, 0);
  r.h.notify(1);
  CHECK(r.tx.wait_used(1));
  CHECK_EQ(r.dev->read_output(kMaxTxChainBytes + 1).size(), kMaxTxChainBytes);
  // One byte more is dropped and counted.
  r.tx.add_chain({{0x100000, static_cast<uint32_t>(kMaxTxChainBytes), false}, {0x100000, 1, false}}, 2);
  r.h.notify(1);
  CHECK(r.tx.wait_used(2));
  CHECK_EQ(r.dev->stats().dropped_chains, 1u);
  CHECK(r.dev->read_output(10).empty());
}

TEST(console_paused_leaves_the_queues_alone_until_resumed) {
  ConsoleRig r;
  REQUIRE(r.h.bring_up({&r.rx, &r.tx}));
  {
    std::lock_guard guard(r.dev->lock());
    r.dev->set_paused(true);
  }
  r.rx.add_chain({{0x100000, 64, true}}, 0);
  r.h.notify(0);
  const std::string text = "while paused";
  r.dev->write_input(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_EQ(r.rx.used_idx(), 0u);  // guest memory untouched while paused
  {
    std::lock_guard guard(r.dev->lock());
    r.dev->set_paused(false);
  }
  CHECK(r.rx.wait_used(1));
  CHECK_EQ(r.rx.used_element(0).len, text.size());
}

TEST(console_input_is_bounded_and_says_when_there_is_room) {
  ConsoleRig r;
  REQUIRE(r.h.bring_up({&r.rx, &r.tx}));
  std::vector<uint8_t> big(kConsoleBufferBytes + 1000, 'x');
  CHECK_EQ(r.dev->write_input(big), kConsoleBufferBytes);
  // The guest takes 2.5 MiB in 64 KiB buffers, dropping below half full.
  for (uint16_t i = 0; i < 40; i++) r.rx.add_chain({{0x100000 + 0x10000ull * (i % 32), 0x10000, true}}, i);
  r.h.notify(0);
  CHECK(r.rx.wait_used(40));
  CHECK(wait_for([&] { return r.input_space->load() == 1; }));
}

}  // namespace nodevisor::tests
