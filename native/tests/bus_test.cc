// The device bus: ordered ranges, overlaps and wrap-around refused, accesses dispatched only
// when they lie entirely inside one device.
#include <cstring>
#include <memory>

#include "tests/framework.h"
#include "vmm/bus/bus.h"

namespace nodevisor::tests {

namespace {

// Records the last access; reads return the offset's low byte.
class Recorder final : public vmm::BusDevice {
 public:
  uint64_t last_offset = ~0ull;
  size_t last_size = 0;
  void read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    last_size = data.size();
    std::memset(data.data(), static_cast<int>(offset & 0xff), data.size());
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_size = data.size();
  }
  std::vector<uint8_t> save() const override { return {}; }
  Status restore(std::span<const uint8_t>) override { return {}; }
};

}  // namespace

TEST(bus_refuses_overlapping_empty_and_wrapping_ranges) {
  vmm::Bus bus("test");
  auto a = std::make_shared<Recorder>();
  CHECK(bus.insert(0x1000, 0x100, a).ok());
  CHECK(!bus.insert(0x10ff, 0x10, a).ok());   // overlaps the end
  CHECK(!bus.insert(0x0ff0, 0x20, a).ok());   // overlaps the start
  CHECK(!bus.insert(0x1010, 0x10, a).ok());   // inside
  CHECK(!bus.insert(0x0f00, 0x400, a).ok());  // around
  CHECK(!bus.insert(0x3000, 0, a).ok());      // empty
  CHECK(!bus.insert(0xffff'ffff'ffff'fff0ull, 0x20, a).ok());  // wraps past 2^64
  CHECK(bus.insert(0x1100, 0x100, a).ok());   // adjacent is fine
}

TEST(bus_dispatches_only_accesses_inside_one_device) {
  vmm::Bus bus("test");
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  REQUIRE(bus.insert(0x1000, 0x100, a).ok());
  REQUIRE(bus.insert(0x1100, 0x100, b).ok());
  uint8_t buf[4] = {};
  CHECK(bus.read(0x1010, buf));
  CHECK_EQ(a->last_offset, 0x10u);
  CHECK_EQ(buf[0], 0x10);
  CHECK(bus.write(0x11fc, std::span<const uint8_t>(buf, 4)));
  CHECK_EQ(b->last_offset, 0xfcu);
  CHECK(!bus.read(0x10fe, buf));  // straddles a and b: no device claims it
  CHECK(!bus.read(0x0fff, std::span<uint8_t>(buf, 2)));
  CHECK(!bus.write(0x2000, std::span<const uint8_t>(buf, 1)));
  CHECK(!bus.read(0xffff'ffff'ffff'fffeull, buf));  // address + size wraps
}

}  // namespace nodevisor::tests
