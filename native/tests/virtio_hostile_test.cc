// A hostile driver: loops, indexes out of range, buffers outside guest memory, huge lengths,
// an avail index that lies. The device must answer with an error status or stop serving the
// queue until a reset — and neither crash nor touch memory outside the guest.
#include <unistd.h>

#include <string>

#include "tests/framework.h"
#include "tests/virtio_harness.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/block/block_request.h"

namespace nodevisor::tests {

namespace {

constexpr uint64_t kRings = 0x10000;
constexpr uint64_t kHeader = 0x100000;
constexpr uint64_t kStatusByte = 0x300000;

struct Rig {
  std::string path;
  std::shared_ptr<BlockDevice> dev;
  VirtioHarness h;
  MockQueue q;

  static std::shared_ptr<BlockDevice> make(const std::string& path) {
    return std::move(BlockDevice::create("vda", false, std::move(BlockBackend::open(path, false)).value(), "h")).value();
  }
  explicit Rig(const std::string& p) : path(p), dev(make(p)), h(dev), q(h.mem, kRings, 16) {}
  // `dev` outlives `h` (and its guest memory), and its worker thread may still be serving a
  // notify the case just made: reset the device first, as a driver would. The reset runs under
  // the device lock, so it waits for that handler, and afterwards the worker finds the device
  // inactive with no memory.
  ~Rig() { h.set(mmio::kStatus, 0); }
};

std::string temp_image() {
  char tmpl[] = "/tmp/nodevisor-hostile-XXXXXX";
  int fd = mkstemp(tmpl);
  (void)!ftruncate(fd, 64 * 512);
  close(fd);
  return tmpl;
}

void put_header(VirtioHarness& h, uint32_t type, uint64_t sector) {
  struct {
    uint32_t type, reserved;
    uint64_t sector;
  } hdr{type, 0, sector};
  h.write_bytes(kHeader, &hdr, sizeof hdr);
}

}  // namespace

TEST(hostile_descriptor_loop_is_cut_and_answered) {
  auto path = temp_image();
  Rig r(path);
  REQUIRE(r.h.bring_up({&r.q}));
  put_header(r.h, kBlockTypeIn, 0);
  // 0 -> 1 -> 0 -> ... never ends.
  r.q.write_descriptor(0, {kHeader, 16, kDescFlagNext, 1});
  r.q.write_descriptor(1, {kStatusByte, 1, kDescFlagNext | kDescFlagWrite, 0});
  r.q.publish(0);
  r.h.notify(0);
  CHECK(r.q.wait_used(1));
  CHECK_EQ(r.q.used_element(0).len, 0u);
  CHECK_EQ(r.dev->stats().bad_chains, 1u);
  // The device keeps serving well-formed requests.
  put_header(r.h, kBlockTypeFlush, 0);
  r.q.add_chain({{kHeader, 16, false}, {kStatusByte, 1, true}}, 4);
  r.h.notify(0);
  CHECK(r.q.wait_used(2));
  CHECK_EQ(r.h.read_bytes(kStatusByte, 1)[0], kBlockStatusOk);
  unlink(path.c_str());
}

TEST(hostile_buffers_outside_guest_memory_are_refused) {
  auto path = temp_image();
  Rig r(path);
  REQUIRE(r.h.bring_up({&r.q}));
  put_header(r.h, kBlockTypeIn, 0);
  const uint64_t addrs[] = {kGuestRamBytes, kGuestRamBytes - 100, 0xffff'ffff'ffff'fe00ull};
  uint16_t expected_used = 0;
  for (uint64_t addr : addrs) {
    r.q.add_chain({{kHeader, 16, false}, {addr, 512, true}, {kStatusByte, 1, true}}, 0);
    r.h.notify(0);
    expected_used++;
    CHECK(r.q.wait_used(expected_used));
  }
  // A huge length that would wrap: address + length overflows 64 bits.
  r.q.add_chain({{kHeader, 16, false}, {0x200000, 0xffff'ffffu, true}, {kStatusByte, 1, true}}, 0);
  r.h.notify(0);
  expected_used++;
  CHECK(r.q.wait_used(expected_used));
  CHECK_EQ(r.dev->stats().bad_chains, 4u);
  CHECK_EQ(r.dev->stats().requests, 0u);
  unlink(path.c_str());
}

TEST(hostile_index_out_of_range_and_readable_after_writable) {
  auto path = temp_image();
  Rig r(path);
  REQUIRE(r.h.bring_up({&r.q}));
  put_header(r.h, kBlockTypeIn, 0);
  r.q.publish(200);  // head beyond the 16-entry table
  r.q.write_descriptor(2, {kStatusByte, 1, kDescFlagNext | kDescFlagWrite, 3});
  r.q.write_descriptor(3, {kHeader, 16, 0, 0});  // readable after writable
  r.q.publish(2);
  r.q.write_descriptor(5, {kHeader, 16, kDescFlagNext, 99});  // next out of range
  r.q.publish(5);
  r.q.write_descriptor(6, {kHeader, 16, kDescFlagIndirect, 0});  // indirect, not negotiated
  r.q.publish(6);
  r.h.notify(0);
  CHECK(r.q.wait_used(4));
  CHECK_EQ(r.dev->stats().bad_chains, 4u);
  unlink(path.c_str());
}

TEST(hostile_avail_index_running_ahead_stops_the_queue_until_reset) {
  auto path = temp_image();
  Rig r(path);
  REQUIRE(r.h.bring_up({&r.q}));
  r.q.set_avail_idx(1000);  // 1000 entries "available" in a 16-entry queue
  r.h.notify(0);
  // Wait for the worker to see it (a generous bound, not a timing window: 10 s).
  for (int i = 0; i < 10000 && r.dev->stats().ring_errors == 0; i++) usleep(1000);
  CHECK_EQ(r.dev->stats().ring_errors, 1u);
  CHECK(!r.dev->activated());
  CHECK_EQ(r.q.used_idx(), 0u);
  // The driver is told: DEVICE_NEEDS_RESET and a config-change interrupt (virtio 1.2 §2.1.2).
  CHECK(r.h.reg(mmio::kStatus) & kStatusNeedsReset);
  CHECK(r.h.reg(mmio::kInterruptStatus) & mmio::kInterruptConfigChange);
  // After a reset and a new handshake the device works again.
  MockQueue fresh(r.h.mem, 0x40000, 16);
  REQUIRE(r.h.bring_up({&fresh}));
  put_header(r.h, kBlockTypeFlush, 0);
  fresh.add_chain({{kHeader, 16, false}, {kStatusByte, 1, true}});
  r.h.notify(0);
  CHECK(fresh.wait_used(1));
  unlink(path.c_str());
}

TEST(hostile_chain_without_status_byte_gets_zero_length) {
  auto path = temp_image();
  Rig r(path);
  REQUIRE(r.h.bring_up({&r.q}));
  put_header(r.h, kBlockTypeIn, 0);
  r.q.add_chain({{kHeader, 16, false}});
  r.h.notify(0);
  CHECK(r.q.wait_used(1));
  CHECK_EQ(r.q.used_element(0).len, 0u);
  // A header cut short: 8 bytes only.
  r.q.add_chain({{kHeader, 8, false}, {kStatusByte, 1, true}}, 3);
  r.h.notify(0);
  CHECK(r.q.wait_used(2));
  CHECK_EQ(r.h.read_bytes(kStatusByte, 1)[0], kBlockStatusIoErr);
  unlink(path.c_str());
}

TEST(hostile_notify_for_a_missing_queue_is_ignored) {
  auto path = temp_image();
  Rig r(path);
  REQUIRE(r.h.bring_up({&r.q}));
  r.h.notify(7);
  r.h.notify(0xffffffffu);
  CHECK(r.dev->activated());
  unlink(path.c_str());
}

}  // namespace nodevisor::tests
