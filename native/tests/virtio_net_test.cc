// virtio-net against a datagram socket pair standing in for the tap (one read or write is one
// frame, as on a tap): frames both ways with the header passed through, MAC and link status in
// config space, hot-plug, a guest that offers no receive buffers, and a hostile rx/tx queue.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "tests/framework.h"
#include "tests/virtio_harness.h"
#include "vmm/devices/virtio/net/net_device.h"

namespace nodevisor::tests {

namespace {

constexpr uint64_t kRxRings = 0x10000;
constexpr uint64_t kTxRings = 0x20000;
constexpr uint64_t kBuffers = 0x100000;
constexpr MacAddress kMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x2a};

struct NetRig {
  UniqueFd host;  // the other end of the "tap"
  std::shared_ptr<NetDevice> dev;
  VirtioHarness h;
  MockQueue rx, tx;

  static std::shared_ptr<NetDevice> make(UniqueFd* host, bool with_tap) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    host->reset(sv[0]);
    UniqueFd tap(sv[1]);
    if (!with_tap) tap.reset();
    return std::move(NetDevice::create("eth0", kMac, std::move(tap))).value();
  }
  explicit NetRig(bool with_tap = true)
      : dev(make(&host, with_tap)), h(dev), rx(h.mem, kRxRings, 16), tx(h.mem, kTxRings, 16) {}

  bool up() { return h.bring_up({&rx, &tx}, kNetFeatureMac | kNetFeatureStatus); }
  // `dev` outlives `h` (and its guest memory), and its worker may still be serving a notify the
  // case just made: reset the device first, as a driver would (the reset waits for the handler
  // under the device lock; afterwards the worker finds the device inactive with no memory).
  ~NetRig() { h.set(mmio::kStatus, 0); }
};

bool wait_for(const std::function<bool()>& cond, int ms = 5000) {
  for (int i = 0; i < ms * 10; i++) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return cond();
}

// A frame as the tap carries it: a 12-byte header (zeros) and `payload`.
std::vector<uint8_t> framed(const std::string& payload) {
  std::vector<uint8_t> f(kNetHdrBytes, 0);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

std::vector<uint8_t> recv_frame(int fd) {
  std::vector<uint8_t> buf(70000);
  ssize_t n = -1;
  wait_for([&] {
    n = ::recv(fd, buf.data(), buf.size(), 0);
    return n >= 0;
  });
  buf.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return buf;
}

}  // namespace

TEST(net_config_space_has_the_mac_and_link_status) {
  NetRig r;
  CHECK((r.h.reg(mmio::kDeviceFeatures) & (kNetFeatureMac | kNetFeatureStatus)) == (kNetFeatureMac | kNetFeatureStatus));
  CHECK_EQ(r.h.reg(mmio::kDeviceId), kDeviceIdNet);
  auto cfg = [&](uint64_t off) {
    uint8_t b[1];
    r.h.transport->read(mmio::kConfig + off, b);
    return b[0];
  };
  for (size_t i = 0; i < 6; i++) CHECK_EQ(cfg(i), kMac[i]);
  CHECK_EQ(cfg(6), kNetStatusLinkUp);
  NetRig empty(false);
  uint8_t b[2];
  empty.h.transport->read(mmio::kConfig + 6, b);
  CHECK_EQ(b[0], 0u);
}

TEST(net_guest_frames_reach_the_tap_with_their_header) {
  NetRig r;
  REQUIRE(r.up());
  auto frame = framed("guest frame");
  frame[0] = 0;  // flags
  r.h.write_bytes(kBuffers, frame.data(), frame.size());
  r.tx.add_chain({{kBuffers, kNetHdrBytes, false}, {kBuffers + kNetHdrBytes, static_cast<uint32_t>(frame.size() - kNetHdrBytes), false}});
  r.h.notify(1);
  CHECK(r.tx.wait_used(1));
  CHECK(recv_frame(r.host.get()) == frame);
  CHECK_EQ(r.dev->stats().tx_frames, 1u);
}

TEST(net_tap_frames_fill_guest_buffers_when_they_come) {
  NetRig r;
  REQUIRE(r.up());
  auto frame = framed("host frame");
  CHECK_EQ(::send(r.host.get(), frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_EQ(r.rx.used_idx(), 0u);  // no receive buffer yet
  r.rx.add_chain({{kBuffers, 2048, true}});
  r.h.notify(0);
  CHECK(r.rx.wait_used(1));
  const auto used = r.rx.used_element(0);
  CHECK_EQ(used.len, frame.size());
  auto got = r.h.read_bytes(kBuffers, frame.size());
  frame[10] = 1;  // num_buffers
  CHECK(got == frame);
  // The worker publishes the used element, then raises the interrupt: wait for it a little.
  for (int i = 0; i < 1000 && r.h.irqs->load() == 0; i++) usleep(1000);
  CHECK(*r.h.irqs > 0);
}

TEST(net_many_frames_are_delivered_in_order_across_wakeups) {
  NetRig r;
  REQUIRE(r.up());
  // More frames than one wake-up's budget; the guest recycles its 16 buffers.
  constexpr int kFrames = 3 * kNetBudget;
  int sent = 0, seen = 0;
  uint16_t offered = 0;
  while (seen < kFrames) {
    while (sent < kFrames && sent - seen < 8) {
      auto f = framed("frame " + std::to_string(sent++));
      REQUIRE(::send(r.host.get(), f.data(), f.size(), 0) > 0);
    }
    while (offered - seen < 8) {
      r.rx.add_chain({{kBuffers + 2048u * (offered % 16), 2048, true}}, static_cast<uint16_t>(offered % 16));
      offered++;
    }
    r.h.notify(0);
    // Several frames may land per wake-up: wait until this one has (wait_used wants an exact index).
    REQUIRE(wait_for([&] { return static_cast<uint16_t>(r.rx.used_idx() - seen) >= 1; }));
    const auto e = r.rx.used_element(static_cast<uint16_t>(seen));
    auto got = r.h.read_bytes(kBuffers + 2048u * (seen % 16) + kNetHdrBytes, e.len - kNetHdrBytes);
    CHECK(std::string(got.begin(), got.end()) == "frame " + std::to_string(seen));
    seen++;
  }
  CHECK_EQ(r.dev->stats().rx_frames, static_cast<uint64_t>(kFrames));
}

TEST(net_frame_larger_than_the_buffer_is_dropped_not_truncated) {
  NetRig r;
  REQUIRE(r.up());
  auto f = framed(std::string(1000, 'x'));
  REQUIRE(::send(r.host.get(), f.data(), f.size(), 0) > 0);
  r.rx.add_chain({{kBuffers, 100, true}});
  r.h.notify(0);
  CHECK(r.rx.wait_used(1));
  CHECK_EQ(r.rx.used_element(0).len, 0u);
  CHECK_EQ(r.dev->stats().rx_dropped, 1u);
}

TEST(net_hostile_tx_chains_are_refused_and_the_device_keeps_serving) {
  NetRig r;
  REQUIRE(r.up());
  // A loop, a buffer past guest RAM, a chain shorter than a header, a writable buffer, a huge one.
  r.tx.write_descriptor(0, {kBuffers, 12, kDescFlagNext, 1});
  r.tx.write_descriptor(1, {kBuffers, 12, kDescFlagNext, 0});
  r.tx.publish(0);
  r.tx.write_descriptor(2, {kGuestRamBytes - 4, 64, 0, 0});
  r.tx.publish(2);
  r.tx.add_chain({{kBuffers, 4, false}}, 3);
  r.tx.add_chain({{kBuffers, 64, true}}, 4);
  r.tx.add_chain({{kBuffers, kNetHdrBytes + kNetMaxFrameBytes + 1, false}}, 5);
  r.h.notify(1);
  CHECK(r.tx.wait_used(5));
  CHECK_EQ(r.dev->stats().bad_chains, 5u);
  CHECK_EQ(r.dev->stats().tx_frames, 0u);
  auto f = framed("still works");
  r.h.write_bytes(kBuffers, f.data(), f.size());
  r.tx.add_chain({{kBuffers, static_cast<uint32_t>(f.size()), false}}, 6);
  r.h.notify(1);
  CHECK(r.tx.wait_used(6));
  CHECK(recv_frame(r.host.get()) == f);
}

TEST(net_hostile_rx_chains_are_consumed_and_the_frame_waits_for_a_good_one) {
  NetRig r;
  REQUIRE(r.up());
  auto f = framed("for a good buffer");
  REQUIRE(::send(r.host.get(), f.data(), f.size(), 0) > 0);
  r.rx.write_descriptor(0, {kBuffers, 64, kDescFlagWrite | kDescFlagNext, 0});  // loops on itself
  r.rx.publish(0);
  r.rx.write_descriptor(1, {0xffff'ffff'ffff'f000ull, 4096, kDescFlagWrite, 0});  // outside RAM
  r.rx.publish(1);
  r.rx.add_chain({{kBuffers, 2048, true}}, 2);
  r.h.notify(0);
  CHECK(r.rx.wait_used(3));
  CHECK_EQ(r.rx.used_element(0).len, 0u);
  CHECK_EQ(r.rx.used_element(1).len, 0u);
  CHECK_EQ(r.rx.used_element(2).len, f.size());
  CHECK_EQ(r.dev->stats().bad_chains, 2u);
}

TEST(net_avail_index_that_lies_stops_the_device_until_reset) {
  NetRig r;
  REQUIRE(r.up());
  r.tx.set_avail_idx(1000);
  r.h.notify(1);
  CHECK(wait_for([&] { return (r.h.reg(mmio::kStatus) & kStatusNeedsReset) != 0; }));
  CHECK_EQ(r.dev->stats().ring_errors, 1u);
  // The worker is not stuck: a fresh bring-up serves again.
  MockQueue rx2(r.h.mem, 0x30000, 16), tx2(r.h.mem, 0x40000, 16);
  REQUIRE(r.h.bring_up({&rx2, &tx2}, kNetFeatureMac | kNetFeatureStatus));
  auto f = framed("after reset");
  r.h.write_bytes(kBuffers, f.data(), f.size());
  tx2.add_chain({{kBuffers, static_cast<uint32_t>(f.size()), false}});
  r.h.notify(1);
  CHECK(tx2.wait_used(1));
  CHECK(recv_frame(r.host.get()) == f);
}

TEST(net_flooded_tap_without_buffers_does_not_spin_or_block_transmit) {
  NetRig r;
  REQUIRE(r.up());
  auto f = framed("flood");
  while (::send(r.host.get(), f.data(), f.size(), 0) > 0) {
  }
  // No receive buffers: transmit still goes through.
  auto out = framed("outbound");
  r.h.write_bytes(kBuffers, out.data(), out.size());
  r.tx.add_chain({{kBuffers, static_cast<uint32_t>(out.size()), false}});
  r.h.notify(1);
  CHECK(r.tx.wait_used(1));
  CHECK(recv_frame(r.host.get()) == out);
}

TEST(net_hotplug_attach_sets_mac_link_and_raises_config_change) {
  NetRig r(false);
  REQUIRE(r.up());
  CHECK(!r.dev->has_tap());
  // Sent while empty: dropped.
  auto f = framed("nowhere");
  r.h.write_bytes(kBuffers, f.data(), f.size());
  r.tx.add_chain({{kBuffers, static_cast<uint32_t>(f.size()), false}});
  r.h.notify(1);
  CHECK(r.tx.wait_used(1));
  CHECK_EQ(r.dev->stats().tx_dropped, 1u);
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd host(sv[0]);
  const uint32_t gen = r.h.reg(mmio::kConfigGeneration);
  const MacAddress mac{0x02, 1, 2, 3, 4, 5};
  REQUIRE(r.dev->attach(UniqueFd(sv[1]), mac, *r.h.transport).ok());
  CHECK(r.h.reg(mmio::kConfigGeneration) != gen);
  CHECK((r.h.reg(mmio::kInterruptStatus) & mmio::kInterruptConfigChange) != 0);
  uint8_t b[8];
  r.h.transport->read(mmio::kConfig, b);
  CHECK(std::memcmp(b, mac.data(), 6) == 0);
  CHECK_EQ(b[6], kNetStatusLinkUp);
  CHECK(!r.dev->attach(UniqueFd(::dup(sv[0])), mac, *r.h.transport).ok());  // EBUSY
  auto in = framed("after attach");
  REQUIRE(::send(host.get(), in.data(), in.size(), 0) > 0);
  r.rx.add_chain({{kBuffers + 4096, 2048, true}});
  r.h.notify(0);
  CHECK(r.rx.wait_used(1));
  CHECK_EQ(r.rx.used_element(0).len, in.size());
  REQUIRE(r.dev->detach(*r.h.transport).ok());
  CHECK(!r.dev->has_tap());
  CHECK(!r.dev->detach(*r.h.transport).ok());  // ENOENT
}

TEST(net_empty_slot_state_round_trips_mac_and_config_generation) {
  // A template's slot that had an endpoint and was emptied: its clone's slot shows the same
  // config generation and MAC, link down, and takes a new tap.
  NetRig r(false);
  REQUIRE(r.up());
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd host(sv[0]);
  const MacAddress mac{0x02, 9, 8, 7, 6, 5};
  REQUIRE(r.dev->attach(UniqueFd(sv[1]), mac, *r.h.transport).ok());
  REQUIRE(r.dev->detach(*r.h.transport).ok());
  const uint32_t gen = r.h.reg(mmio::kConfigGeneration);
  const std::vector<uint8_t> saved = r.h.transport->save();

  NetRig clone(false);
  REQUIRE(clone.h.transport->restore(saved).ok());
  CHECK_EQ(clone.h.reg(mmio::kConfigGeneration), gen);
  uint8_t b[8];
  clone.h.transport->read(mmio::kConfig, b);
  CHECK(std::memcmp(b, mac.data(), 6) == 0);
  CHECK_EQ(b[6], 0u);  // no tap: link down
  CHECK(!clone.dev->has_tap());
  // The net part (the blob's last 22 bytes: zero tag and version, net version, generation,
  // MAC) of version 1, which had no MAC, is refused.
  std::vector<uint8_t> v1 = saved;
  const uint32_t one = 1;
  std::memcpy(v1.data() + v1.size() - 14, &one, 4);
  NetRig other(false);
  CHECK(!other.h.transport->restore(v1).ok());
  CHECK(other.h.transport->restore(saved).ok());
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd host2(sv[0]);
  REQUIRE(clone.dev->attach(UniqueFd(sv[1]), kMac, *clone.h.transport).ok());
  CHECK(clone.h.reg(mmio::kConfigGeneration) != gen);
}

}  // namespace nodevisor::tests
