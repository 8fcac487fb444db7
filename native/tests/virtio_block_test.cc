// virtio-blk requests end to end through the transport, against a real file.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/framework.h"
#include "tests/virtio_harness.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/block/block_request.h"

namespace nodevisor::tests {

namespace {

constexpr uint64_t kRings = 0x10000;
constexpr uint64_t kHeader = 0x100000;
constexpr uint64_t kData = 0x200000;
constexpr uint64_t kStatusByte = 0x300000;

// A temporary disk image of `sectors` sectors; sector i is filled with byte (i & 0xff).
struct TempDisk {
  std::string path;
  explicit TempDisk(uint64_t sectors) {
    char tmpl[] = "/tmp/nodevisor-blk-XXXXXX";
    int fd = mkstemp(tmpl);
    path = tmpl;
    std::vector<uint8_t> sector(512);
    for (uint64_t i = 0; i < sectors; i++) {
      std::fill(sector.begin(), sector.end(), static_cast<uint8_t>(i));
      (void)!write(fd, sector.data(), sector.size());
    }
    close(fd);
  }
  ~TempDisk() { unlink(path.c_str()); }
};

struct Header {
  uint32_t type, reserved;
  uint64_t sector;
};

struct BlockRig {
  VirtioHarness h;
  MockQueue q;
  std::shared_ptr<BlockDevice> dev;
  uint16_t next_used = 0;

  explicit BlockRig(std::shared_ptr<BlockDevice> d) : h(d), q(h.mem, kRings, 64), dev(std::move(d)) {}

  // Sends one request and waits for it; returns the status byte (0xee when not answered).
  uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable, uint32_t* used_len = nullptr) {
    Header hdr{type, 0, sector};
    h.write_bytes(kHeader, &hdr, sizeof hdr);
    uint8_t poison = 0xee;
    h.write_bytes(kStatusByte, &poison, 1);
    std::vector<MockBuffer> chain{{kHeader, sizeof hdr, false}};
    if (data_len > 0) chain.push_back({kData, data_len, data_writable});
    chain.push_back({kStatusByte, 1, true});
    q.add_chain(chain, static_cast<uint16_t>((next_used * 3) % 64));
    h.notify(0);
    next_used++;
    if (!q.wait_used(next_used)) return 0xee;
    if (used_len) *used_len = q.used_element(static_cast<uint16_t>(next_used - 1)).len;
    return h.read_bytes(kStatusByte, 1)[0];
  }
};

std::shared_ptr<BlockDevice> device_for(const std::string& path, bool ro, const std::string& serial) {
  auto disk = BlockBackend::open(path, ro);
  return std::move(BlockDevice::create("vda", ro, std::move(disk).value(), serial)).value();
}

}  // namespace

TEST(block_reads_sectors_and_reports_capacity) {
  TempDisk disk(64);
  BlockRig rig(device_for(disk.path, false, "rootfs-1"));
  REQUIRE(rig.h.bring_up({&rig.q}, kBlockFeatureFlush));
  uint8_t cap[8];
  rig.h.transport->read(mmio::kConfig, cap);
  uint64_t capacity;
  std::memcpy(&capacity, cap, 8);
  CHECK_EQ(capacity, 64u);
  uint32_t used = 0;
  CHECK_EQ(rig.request(kBlockTypeIn, 5, 1024, true, &used), kBlockStatusOk);
  CHECK_EQ(used, 1025u);
  auto data = rig.h.read_bytes(kData, 1024);
  CHECK_EQ(data[0], 5);
  CHECK_EQ(data[511], 5);
  CHECK_EQ(data[512], 6);
  CHECK(rig.h.irqs->load() >= 1);
}

TEST(block_writes_then_reads_back_and_flushes) {
  TempDisk disk(16);
  BlockRig rig(device_for(disk.path, false, "w"));
  REQUIRE(rig.h.bring_up({&rig.q}, kBlockFeatureFlush));
  std::vector<uint8_t> pattern(512);
  for (size_t i = 0; i < pattern.size(); i++) pattern[i] = static_cast<uint8_t>(i * 7);
  rig.h.write_bytes(kData, pattern.data(), pattern.size());
  CHECK_EQ(rig.request(kBlockTypeOut, 3, 512, false), kBlockStatusOk);
  CHECK_EQ(rig.request(kBlockTypeFlush, 0, 0, false), kBlockStatusOk);
  std::vector<uint8_t> zeros(512, 0);
  rig.h.write_bytes(kData, zeros.data(), zeros.size());
  CHECK_EQ(rig.request(kBlockTypeIn, 3, 512, true), kBlockStatusOk);
  CHECK(rig.h.read_bytes(kData, 512) == pattern);
  // And it is really on the host file.
  int fd = open(disk.path.c_str(), O_RDONLY);
  std::vector<uint8_t> host(512);
  CHECK_EQ(pread(fd, host.data(), 512, 3 * 512), 512);
  close(fd);
  CHECK(host == pattern);
}

TEST(block_get_id_returns_the_serial) {
  TempDisk disk(1);
  BlockRig rig(device_for(disk.path, false, "container-42"));
  REQUIRE(rig.h.bring_up({&rig.q}));
  uint32_t used = 0;
  CHECK_EQ(rig.request(kBlockTypeGetId, 0, 20, true, &used), kBlockStatusOk);
  CHECK_EQ(used, 21u);
  auto id = rig.h.read_bytes(kData, 20);
  CHECK(std::string(reinterpret_cast<char*>(id.data()), 12) == "container-42");
  CHECK_EQ(id[12], 0);
}

TEST(block_read_only_disk_refuses_writes) {
  TempDisk disk(8);
  BlockRig rig(device_for(disk.path, true, "ro"));
  {
    rig.h.set(mmio::kDeviceFeaturesSel, 0);
    CHECK(rig.h.reg(mmio::kDeviceFeatures) & kBlockFeatureRo);
  }
  REQUIRE(rig.h.bring_up({&rig.q}));
  CHECK_EQ(rig.request(kBlockTypeOut, 0, 512, false), kBlockStatusIoErr);
  CHECK_EQ(rig.request(kBlockTypeIn, 0, 512, true), kBlockStatusOk);
}

TEST(block_bad_requests_get_error_statuses) {
  TempDisk disk(8);
  BlockRig rig(device_for(disk.path, false, "x"));
  REQUIRE(rig.h.bring_up({&rig.q}));
  CHECK_EQ(rig.request(kBlockTypeIn, 8, 512, true), kBlockStatusIoErr);     // past the end
  CHECK_EQ(rig.request(kBlockTypeIn, 7, 1024, true), kBlockStatusIoErr);    // runs past the end
  CHECK_EQ(rig.request(kBlockTypeIn, 0, 100, true), kBlockStatusIoErr);     // not whole sectors
  CHECK_EQ(rig.request(kBlockTypeIn, 0xffff'ffff'ffff'ffffull, 512, true), kBlockStatusIoErr);  // overflow
  CHECK_EQ(rig.request(kBlockTypeOut, 0x0080'0000'0000'0000ull, 512, false), kBlockStatusIoErr);
  CHECK_EQ(rig.request(99, 0, 0, false), kBlockStatusUnsupported);
  CHECK_EQ(rig.request(kBlockTypeIn, 0, 512, true), kBlockStatusOk);  // still serving
  CHECK_EQ(rig.dev->stats().errors, 6u);
}

TEST(block_hot_plug_attach_and_detach) {
  TempDisk disk(32);
  auto slot = std::move(BlockDevice::create("slot", false, std::nullopt, "")).value();
  BlockRig rig(slot);
  REQUIRE(rig.h.bring_up({&rig.q}));
  uint8_t cap[8];
  rig.h.transport->read(mmio::kConfig, cap);
  CHECK_EQ(cap[0], 0);
  const int before_request = rig.h.irqs->load();
  CHECK_EQ(rig.request(kBlockTypeIn, 0, 512, true), kBlockStatusIoErr);  // empty slot
  // The worker raises the used-buffer interrupt after it publishes the used entry that
  // request() waits for: wait for that interrupt (10 s bound), or it would be counted as the
  // attach's.
  for (int i = 0; i < 10000 && rig.h.irqs->load() == before_request; i++) usleep(1000);
  const uint32_t gen = rig.h.reg(mmio::kConfigGeneration);
  const int irqs = rig.h.irqs->load();
  CHECK(slot->attach(std::move(BlockBackend::open(disk.path, false)).value(), "ctr-1", *rig.h.transport).ok());
  CHECK(rig.h.reg(mmio::kConfigGeneration) != gen);
  CHECK(rig.h.reg(mmio::kInterruptStatus) & mmio::kInterruptConfigChange);
  CHECK_EQ(rig.h.irqs->load(), irqs + 1);
  rig.h.transport->read(mmio::kConfig, cap);
  CHECK_EQ(cap[0], 32);
  CHECK_EQ(rig.request(kBlockTypeIn, 31, 512, true), kBlockStatusOk);
  CHECK_EQ(rig.h.read_bytes(kData, 1)[0], 31);
  // A second attach to a full slot is refused; detach empties it.
  CHECK(!slot->attach(std::move(BlockBackend::open(disk.path, false)).value(), "ctr-2", *rig.h.transport).ok());
  CHECK(slot->detach(*rig.h.transport).ok());
  rig.h.transport->read(mmio::kConfig, cap);
  CHECK_EQ(cap[0], 0);
  CHECK(!slot->detach(*rig.h.transport).ok());
  CHECK(!BlockDevice::create("x", false, std::nullopt, std::string(21, 'a')));  // serial > 20 bytes
}

TEST(block_request_in_progress_gives_up_when_asked_to_stop) {
  TempDisk disk(4096);  // 2 MiB
  auto dev = device_for(disk.path, false, "big");
  BlockRig rig(dev);
  REQUIRE(rig.h.bring_up({&rig.q}));
  dev->request_stop();
  // A 1 MiB read is 16 bounce-buffer chunks; with stop requested it fails at the first.
  CHECK_EQ(rig.request(kBlockTypeIn, 0, 1 << 20, true), kBlockStatusIoErr);
}

TEST(block_backend_open_errors_name_the_path) {
  auto missing = BlockBackend::open("/nonexistent/disk.img", false);
  REQUIRE(!missing);
  CHECK(missing.error().path == "/nonexistent/disk.img");
  CHECK_EQ(missing.error().errnum, ENOENT);
  auto dir = BlockBackend::open("/tmp", true);
  CHECK(!dir);
}

}  // namespace nodevisor::tests
