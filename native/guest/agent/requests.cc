// The requests that are not about containers: ping, echo, time.sync, rng.reseed,
// disk.checksum, storage.mount and storage.unmount (docs/protocol.md). Main loop thread.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent.h"
#include "errors.h"
#include "guest/protocol/base64.h"
#include "guest/protocol/crc32.h"
#include "guest/protocol/frame.h"
#include "validate.h"

namespace nodevisor::agent {

namespace {

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

void Agent::handle_ping(uint64_t id, const Fields&) {
  send_ok(id, [](json::Writer& w) {
    w.key("agent").string("nodevisor-agent").key("version").number(NV_PROTOCOL_VERSION);
    w.key("pid").number(::getpid());
  });
}

void Agent::handle_echo(uint64_t id, const Fields& f) {
  std::string data = f.string("data");
  send_ok(id, [&](json::Writer& w) { w.key("data").string(data); });
}

void Agent::handle_time_sync(uint64_t id, const Fields& f) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(f.integer("sec", 0, int64_t{1} << 40));
  ts.tv_nsec = static_cast<long>(f.integer("nsec", 0, 999999999));
  if (::clock_settime(CLOCK_REALTIME, &ts) != 0) fail_errno(errno, "clock_settime");
  send_ok(id);
}

void Agent::handle_rng_reseed(uint64_t id, const Fields& f) {
  auto bytes = base64::decode(f.string("data"));
  if (!bytes || bytes->empty() || bytes->size() > 512) fail("EINVAL", "data must be base64 of 1 to 512 bytes");
  int64_t bits = f.optional_integer("entropyBits", 0, static_cast<int64_t>(bytes->size()) * 8)
                     .value_or(static_cast<int64_t>(bytes->size()) * 8);
  std::vector<unsigned char> buffer(sizeof(rand_pool_info) + bytes->size());
  auto* info = reinterpret_cast<rand_pool_info*>(buffer.data());
  info->entropy_count = static_cast<int>(bits);
  info->buf_size = static_cast<int>(bytes->size());
  std::memcpy(buffer.data() + sizeof(rand_pool_info), bytes->data(), bytes->size());
  UniqueFd urandom(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!urandom.valid()) fail_errno(errno, "open /dev/urandom");
  if (::ioctl(urandom.get(), RNDADDENTROPY, info) != 0) fail_errno(errno, "RNDADDENTROPY");
  send_ok(id);
}

void Agent::handle_storage_unmount(uint64_t id, const Fields& f) {
  unmount(f.path("mountPoint"));
  send_ok(id);
}

void Agent::handle_storage_mount(uint64_t id, const Fields& f) {
  auto serial = f.optional_string("serial");
  auto device = f.optional_string("device");
  if (serial.has_value() == device.has_value()) fail("EINVAL", "give exactly one of serial and device");
  if (f.get("fstype") == nullptr) fail("EINVAL", "need mount FS type (fstype)");
  std::string fstype = f.string("fstype");
  if (fstype.empty()) fail("EINVAL", "need mount FS type (fstype)");
  if (f.get("mountPoint") == nullptr) fail("EINVAL", "need mount destination (mountPoint)");
  std::string mount_point = f.path("mountPoint");
  MountOptions options = split_mount_options(f.string_array("options", 64, false));
  int64_t timeout = f.optional_integer("timeoutMs", 0, 60000).value_or(5000);
  if (device) {
    if (!normal_absolute_path(*device)) fail("EPATH", "device must be an absolute path");
    std::string resolved = mount_block_device(*device, fstype, options, mount_point);
    send_ok(id, [&](json::Writer& w) { w.key("device").string(resolved).key("mountPoint").string(mount_point); });
    return;
  }
  if (serial->empty() || serial->size() > 64) fail("EINVAL", "serial must be 1 to 64 bytes");
  pending_mounts_.push_back({id, *serial, fstype, options, mount_point, now_ms() + timeout});
  check_pending_mounts();
}

void Agent::check_pending_mounts() {
  int64_t now = now_ms();
  for (size_t i = 0; i < pending_mounts_.size();) {
    PendingMount& m = pending_mounts_[i];
    auto name = find_disk_by_serial(options_.sys_block, m.serial);
    if (!name && now < m.deadline_ms) {
      ++i;
      continue;
    }
    PendingMount done = std::move(m);
    pending_mounts_.erase(pending_mounts_.begin() + static_cast<long>(i));
    if (!name) {
      send_error(done.request, "ETIMEDOUT", "no disk with serial \"" + done.serial + "\" appeared");
      continue;
    }
    try {
      std::string resolved = mount_block_device("/dev/" + *name, done.fstype, done.options, done.mount_point);
      send_ok(done.request, [&](json::Writer& w) {
        w.key("device").string(resolved).key("mountPoint").string(done.mount_point);
      });
    } catch (const AgentError& e) {
      send_error(done.request, e.code, e.message);
    }
  }
}

void Agent::handle_disk_checksum(uint64_t id, const Fields& f) {
  std::string serial = f.string("serial");
  int64_t offset = f.integer("offset", 0, int64_t{1} << 50);
  int64_t length = f.integer("length", 0, int64_t{1} << 30);
  auto name = find_disk_by_serial(options_.sys_block, serial);
  if (!name) fail("ENOENT", "no disk with serial \"" + serial + "\"");
  std::string path = "/dev/" + *name;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) fail_errno(errno, "open " + path);
  // Runs on the main loop: a 1 GiB range blocks serving for its duration (tests use small ones).
  uint32_t crc = 0;
  std::vector<unsigned char> buffer(64 * 1024);
  int64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<int64_t>(length - done, static_cast<int64_t>(buffer.size())));
    ssize_t n = ::pread(fd.get(), buffer.data(), want, offset + done);
    if (n < 0) fail_errno(errno, "read " + path);
    if (n == 0) fail("EINVAL", "range beyond the end of " + path);
    crc = nv_crc32_update(crc, buffer.data(), static_cast<size_t>(n));
    done += n;
  }
  send_ok(id, [&](json::Writer& w) { w.key("crc32").number(crc); });
}

}  // namespace nodevisor::agent
