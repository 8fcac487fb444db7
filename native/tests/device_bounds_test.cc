// How long a hostile driver can make the host wait (issue 10, "The VMM"). A driver thread keeps
// the device as busy as it can; meanwhile the calls other threads make into the device — a
// vCPU's register access (the device mutex), attach and has_disk (the device mutex), the JS
// thread's console reads and writes (the console's buffer lock), a stop or a pause (the work
// lock) — must each return within a bound far below what the flood lasts. Also: paths are
// checked before they are opened, a refused device state changes nothing, and a bzImage whose
// pref_address + init_size wraps is refused.
//
// The bounds are generous (250 ms: a loaded 2-core CI machine, an ASan build); each flood
// held the old code's device mutex for seconds. The figures measured are printed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "tests/framework.h"
#include "tests/virtio_harness.h"
#include "vmm/arch/x86_64/bzimage.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/block/block_request.h"
#include "vmm/devices/virtio/console/console_device.h"
#include "vmm/util/read_file.h"

namespace nodevisor::tests {

namespace {

using Clock = std::chrono::steady_clock;
// Sanitizer builds run slower: NODEVISOR_TEST_TIME_SCALE (the ThreadSanitizer run sets 4)
// stretches the bound.
const auto kCallBound = std::chrono::milliseconds(250) * [] {
  const char* scale = std::getenv("NODEVISOR_TEST_TIME_SCALE");
  return scale != nullptr && std::atoi(scale) > 0 ? std::atoi(scale) : 1;
}();
constexpr auto kFloodTime = std::chrono::milliseconds(400);

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The slowest of `fn`'s calls, made back to back for kFloodTime.
template <typename Fn>
Clock::duration slowest_call(Fn fn) {
  Clock::duration worst{};
  const auto until = Clock::now() + kFloodTime;
  while (Clock::now() < until) {
    const auto t = Clock::now();
    fn();
    worst = std::max(worst, Clock::now() - t);
  }
  return worst;
}

struct Sparse {
  std::string path;
  explicit Sparse(uint64_t bytes) {
    char tmpl[] = "/tmp/nodevisor-bounds-XXXXXX";
    int fd = mkstemp(tmpl);
    (void)!ftruncate(fd, static_cast<off_t>(bytes));
    close(fd);
    path = tmpl;
  }
  ~Sparse() { unlink(path.c_str()); }
};

// A driver thread that re-publishes every chain the device returns, as fast as it can.
struct Flooder {
  std::atomic<bool> stop{false};
  std::thread thread;
  template <typename Fn>
  explicit Flooder(Fn step) : thread([this, step] {
      while (!stop.load()) step();
    }) {}
  ~Flooder() {
    stop = true;
    thread.join();
  }
};

constexpr uint64_t kAlias = 0x400000;        // 4 MiB of RAM that every data buffer names
constexpr uint32_t kAliasBytes = 4 << 20;
constexpr uint64_t kHeaderAt = 0x100000;
constexpr uint64_t kStatusAt = 0x300000;

// A block rig with one request whose 62 data buffers all alias the same 4 MiB (a 248 MiB read),
// published 64 times.
struct BlockFlood {
  Sparse disk{1ull << 30};
  std::shared_ptr<BlockDevice> dev =
      std::move(BlockDevice::create("vda", false, std::move(BlockBackend::open(disk.path, false)).value(), "f")).value();
  VirtioHarness h{dev};
  MockQueue q{h.mem, 0x10000, 64};

  bool start(int copies) {
    if (!h.bring_up({&q})) return false;
    struct {
      uint32_t type, reserved;
      uint64_t sector;
    } hdr{kBlockTypeIn, 0, 0};
    h.write_bytes(kHeaderAt, &hdr, sizeof hdr);
    std::vector<MockBuffer> chain{{kHeaderAt, sizeof hdr, false}};
    for (int i = 0; i < 62; i++) chain.push_back({kAlias, kAliasBytes, true});
    chain.push_back({kStatusAt, 1, true});
    q.add_chain(chain, 0);
    for (int i = 1; i < copies; i++) q.publish(0);
    h.notify(0);
    return true;
  }
};

}  // namespace

TEST(bounds_block_device_mutex_is_free_while_a_huge_request_runs) {
  BlockFlood f;
  REQUIRE(f.start(64));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the worker is in a request
  const auto reg = slowest_call([&] { (void)f.h.reg(mmio::kStatus); });      // a vCPU's access
  const auto has = slowest_call([&] { (void)f.dev->has_disk(); });            // attach's check
  std::printf("    block flood: slowest register read %.2f ms, has_disk %.2f ms\n", ms(reg), ms(has));
  CHECK(reg < kCallBound);
  CHECK(has < kCallBound);
  // A stop: work in progress gives up at its next 64 KiB step.
  const auto t = Clock::now();
  f.dev->request_stop();
  { std::lock_guard work(f.dev->work_lock()); }
  const auto stop = Clock::now() - t;
  std::printf("    block flood: the worker let go %.2f ms after the stop\n", ms(stop));
  CHECK(stop < kCallBound);
  CHECK(f.q.used_idx() < 64);  // the flood was still going
}

TEST(bounds_block_pause_puts_unfinished_work_back_and_redoes_it_after) {
  BlockFlood f;
  REQUIRE(f.start(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // What DeviceManager::set_paused does.
  const auto t = Clock::now();
  f.dev->cancel_work(true);
  {
    std::lock_guard work(f.dev->work_lock());
    std::lock_guard guard(f.dev->lock());
    f.dev->set_paused(true);
  }
  const auto pause = Clock::now() - t;
  std::printf("    block flood: paused %.2f ms after asking\n", ms(pause));
  CHECK(pause < kCallBound);
  CHECK_EQ(f.q.used_idx(), 0);  // not answered: it was put back, not failed
  {
    std::lock_guard work(f.dev->work_lock());
    std::lock_guard guard(f.dev->lock());
    f.dev->cancel_work(false);
    f.dev->set_paused(false);
  }
  CHECK(f.q.wait_used(1, 30000));
  CHECK_EQ(f.h.read_bytes(kStatusAt, 1)[0], kBlockStatusOk);
  CHECK_EQ(f.dev->stats().requests, 1u);
}

TEST(bounds_console_host_calls_never_wait_for_the_device_mutex) {
  // The JS thread's readAgent/writeAgent take the console's buffer lock only: whoever holds the
  // device mutex (the worker in a long loop, a vCPU in the transport) cannot hold them up.
  auto dev = std::move(ConsoleDevice::create("agent", {})).value();
  VirtioHarness h(dev);
  MockQueue rx(h.mem, 0x10000, 16);
  MockQueue tx(h.mem, 0x20000, 16);
  REQUIRE(h.bring_up({&rx, &tx}));
  std::unique_lock held(dev->lock());
  std::atomic<bool> done{false};
  std::thread host([&] {
    uint8_t byte = 'x';
    (void)dev->write_input({&byte, 1});
    (void)dev->read_output(64);
    done = true;
  });
  for (int i = 0; i < 100 && !done; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(done.load());
  held.unlock();
  host.join();
}

TEST(bounds_console_worker_takes_a_budget_of_chains_per_wakeup) {
  auto dev = std::move(ConsoleDevice::create("agent", {})).value();
  VirtioHarness h(dev);
  MockQueue rx(h.mem, 0x10000, 256);
  MockQueue tx(h.mem, 0x20000, 256);
  REQUIRE(h.bring_up({&rx, &tx}));
  {
    // Hold the worker off while the chains are published, then serve one wake-up here.
    std::lock_guard held(dev->lock());
    for (uint16_t i = 0; i < 256; i++) tx.add_chain({{0x100000, 0, false}}, i);
  }
  // The worker may have served some already (activation rang it); each call takes at most a
  // budget and says whether work is left.
  const uint16_t before = tx.used_idx();
  const bool more = dev->serve_doorbell(1);
  const uint16_t after = tx.used_idx();
  CHECK(static_cast<uint16_t>(after - before) <= kConsoleChainsPerWakeup);
  if (static_cast<uint16_t>(256 - before) > kConsoleChainsPerWakeup) CHECK(more);
  h.notify(1);  // (serve_doorbell does not ring the worker again; a budgeted worker does)
  CHECK(tx.wait_used(256));
}

TEST(bounds_console_host_calls_do_not_wait_for_a_driver_flooding_empty_chains) {
  auto dev = std::move(ConsoleDevice::create("agent", {})).value();
  VirtioHarness h(dev);
  MockQueue rx(h.mem, 0x10000, 256);
  MockQueue tx(h.mem, 0x20000, 256);
  REQUIRE(h.bring_up({&rx, &tx}));
  // 256 empty chains on each queue, each one descriptor that is its own head.
  for (uint16_t i = 0; i < 256; i++) {
    rx.add_chain({{0x100000, 0, true}}, i);
    tx.add_chain({{0x100000, 0, false}}, i);
  }
  uint8_t byte = 'x';
  dev->write_input({&byte, 1});  // the receive side loops only while input waits
  h.notify(0);
  h.notify(1);
  {
    // Every ring slot holds a valid head: keeping avail.idx a whole queue ahead of what the
    // device returned is one store per round, so the ring is never seen empty.
    Flooder flood([&] {
      rx.set_avail_idx(static_cast<uint16_t>(rx.used_idx() + 256));
      tx.set_avail_idx(static_cast<uint16_t>(tx.used_idx() + 256));
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto write = slowest_call([&] { (void)dev->write_input({&byte, 1}); });
    const auto read = slowest_call([&] { (void)dev->read_output(64); });
    const auto reg = slowest_call([&] { (void)h.reg(mmio::kStatus); });
    std::printf("    console flood: slowest write_input %.2f ms, read_output %.2f ms, register read %.2f ms\n", ms(write),
                ms(read), ms(reg));
    CHECK(write < kCallBound);
    CHECK(read < kCallBound);
    CHECK(reg < kCallBound);
  }
  CHECK(dev->stats().dropped_chains == 0);
  CHECK(tx.used_idx() != 0);  // the flood was served
}

TEST(bounds_fifo_disk_and_kernel_are_refused_without_opening_them) {
  char dir[] = "/tmp/nodevisor-fifo-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string fifo = std::string(dir) + "/fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  // Should an open block after all, a writer releases it after 3 s (and again every 100 ms), so
  // the case ends (and fails).
  std::atomic<bool> done{false};
  std::thread release([&] {
    for (int i = 0; !done; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (i >= 30 && !done) close(open(fifo.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK));
    }
  });
  auto t = Clock::now();
  auto disk = BlockBackend::open(fifo, true);  // read-only: an O_RDONLY open of a FIFO blocks
  const auto disk_time = Clock::now() - t;
  t = Clock::now();
  auto kernel = read_whole_file(fifo, 1 << 20, "kernel");
  const auto kernel_time = Clock::now() - t;
  done = true;
  release.join();
  CHECK(!disk.ok());
  if (!disk.ok()) CHECK(disk.error().message.find("neither a regular file nor a block device") != std::string::npos);
  CHECK(!kernel.ok());
  if (!kernel.ok()) CHECK(kernel.error().message.find("not a regular file") != std::string::npos);
  CHECK(disk_time < std::chrono::seconds(1));
  CHECK(kernel_time < std::chrono::seconds(1));
  unlink(fifo.c_str());
  rmdir(dir);
}

TEST(bounds_refused_transport_state_changes_nothing) {
  Sparse disk(1 << 20);
  auto dev = std::move(BlockDevice::create("vda", false, std::move(BlockBackend::open(disk.path, false)).value(), "r")).value();
  VirtioHarness h(dev);
  MockQueue q(h.mem, 0x10000, 16);
  REQUIRE(h.bring_up({&q}));
  const uint32_t running = h.reg(mmio::kStatus);
  const std::vector<uint8_t> good = h.transport->save();
  // A status no driver can reach (offset 12: tag, version, device id, status).
  std::vector<uint8_t> bad_status = good;
  const uint32_t weird = 0x7f;
  std::memcpy(bad_status.data() + 12, &weird, 4);
  // A state cut off in the middle of the queues, after a different status.
  std::vector<uint8_t> cut = good;
  const uint32_t zero = 0;
  std::memcpy(cut.data() + 12, &zero, 4);
  cut.resize(60);
  CHECK(!h.transport->restore(bad_status).ok());
  CHECK(!h.transport->restore(cut).ok());
  CHECK_EQ(h.reg(mmio::kStatus), running);
  h.set(mmio::kQueueSel, 0);
  CHECK_EQ(h.reg(mmio::kQueueReady), 1u);
  // Still serving.
  q.add_chain({{0x100000, 16, false}, {0x300000, 1, true}}, 0);
  struct {
    uint32_t type, reserved;
    uint64_t sector;
  } hdr{kBlockTypeFlush, 0, 0};
  h.write_bytes(0x100000, &hdr, sizeof hdr);
  h.notify(0);
  CHECK(q.wait_used(1));
  // The good state still restores.
  CHECK(h.transport->restore(good).ok());
}

TEST(bounds_bzimage_pref_address_plus_init_size_that_wraps_is_refused) {
  std::vector<uint8_t> image(8192, 0);
  auto put16 = [&](size_t at, uint16_t v) { std::memcpy(&image[at], &v, 2); };
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(&image[at], &v, 4); };
  auto put64 = [&](size_t at, uint64_t v) { std::memcpy(&image[at], &v, 8); };
  image[0x1f1] = 1;                 // setup_sects: the kernel starts at 1024
  put32(0x1f4, (8192 - 1024) / 16);  // syssize
  put16(0x1fe, 0xaa55);
  image[0x201] = 0x6a;  // header length past 0x202
  put32(0x202, 0x53726448);         // "HdrS"
  put16(0x206, 0x020f);
  image[0x211] = 1;                 // LOADED_HIGH
  put32(0x230, 0x200000);           // kernel_alignment
  image[0x234] = 1;                 // relocatable: loads at 1 MiB, runs at pref_address
  put16(0x236, 1);                  // XLF_KERNEL_64
  put32(0x238, 2048);               // cmdline_size
  put64(0x258, ~uint64_t{0} - 0xfff);  // pref_address: 4 KiB below the top
  put32(0x260, 0x100000);           // init_size: 1 MiB, past the top
  auto mem = std::move(GuestMemory::create(64 << 20)).value();
  auto loaded = x86_64::load_bzimage(mem, image);
  REQUIRE(!loaded.ok());
  CHECK(loaded.error().message.find("past the end of the address space") != std::string::npos);
}

}  // namespace nodevisor::tests
