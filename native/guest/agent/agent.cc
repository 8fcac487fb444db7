#include "agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/random.h>

#include <cerrno>
#include <cstring>

#include "crc32.h"
#include "errors.h"
#include "guest/protocol/base64.h"
#include "guest/protocol/frame.h"
#include "log.h"
#include "validate.h"

namespace nv::agent {

namespace {

constexpr size_t kSoftOutputLimit = 4u << 20;   // stop reading process output above this
constexpr size_t kHardOutputLimit = 16u << 20;  // stop reading requests above this
constexpr size_t kStdinLimit = 1u << 20;
constexpr size_t kMaxContainers = 1024;
constexpr size_t kMaxExecsPerContainer = 256;
constexpr size_t kOutputChunk = 64 * 1024;
constexpr int64_t kMaxRequestId = (int64_t{1} << 53) - 1;
constexpr int64_t kPendingMountPollMs = 10;

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

void exit_fields(json::Writer& w, int exit_code, int signal) {
  w.key("exitCode");
  if (exit_code >= 0) w.number(exit_code); else w.null();
  w.key("signal");
  if (signal >= 0) w.number(signal); else w.null();
}

}  // namespace

Agent::Agent(Options options) : options_(std::move(options)) {}

void Agent::open_channel() {
  int fd = options_.channel_fd;
  if (fd < 0) {
    const std::string& path = options_.channel_path;
    // As PID 1 the console device appears once virtio_console has probed: wait for it.
    for (int attempt = 0; attempt < 1000; ++attempt) {
      fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
      if (fd >= 0 || !options_.pid1 || errno != ENOENT) break;
      ::usleep(10 * 1000);
    }
    if (fd < 0) fail_errno(errno, "open the agent channel " + path);
  } else {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  // hvc0 is a tty: without raw mode the line discipline would echo, translate \n and eat ^C/^D.
  termios tio{};
  if (::tcgetattr(fd, &tio) == 0) {
    ::cfmakeraw(&tio);
    ::tcsetattr(fd, TCSANOW, &tio);
  }
  channel_fd_.reset(fd);
  channel_ = std::make_unique<Channel>(fd);
}

int Agent::run() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  signal_fd_.reset(::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_.valid()) fail_errno(errno, "signalfd");
  open_channel();
  log("serving on %s", options_.channel_fd >= 0 ? "an inherited fd" : options_.channel_path.c_str());

  // Which pollfd entry belongs to whom; rebuilt every iteration because processes come and go.
  enum class Source { Channel, Signal, Status, Stdout, Stderr, Stdin };
  struct Target {
    Source source;
    std::string container_id;
    std::string exec_id;
  };
  std::vector<pollfd> fds;
  std::vector<Target> targets;

  for (;;) {
    fds.clear();
    targets.clear();
    short channel_events = 0;
    if (channel_->queued() < kHardOutputLimit) channel_events |= POLLIN;
    if (channel_->queued() > 0) channel_events |= POLLOUT;
    fds.push_back({channel_fd_.get(), channel_events, 0});
    targets.push_back({Source::Channel, {}, {}});
    fds.push_back({signal_fd_.get(), POLLIN, 0});
    targets.push_back({Source::Signal, {}, {}});
    bool output_room = channel_->queued() < kSoftOutputLimit;
    for (auto& [cid, c] : containers_) {
      auto add = [&](Proc& p) {
        if (p.io.status_r.valid()) {
          fds.push_back({p.io.status_r.get(), POLLIN, 0});
          targets.push_back({Source::Status, cid, p.exec_id});
        }
        if (output_room && p.io.stdout_r.valid()) {
          fds.push_back({p.io.stdout_r.get(), POLLIN, 0});
          targets.push_back({Source::Stdout, cid, p.exec_id});
        }
        if (output_room && p.io.stderr_r.valid()) {
          fds.push_back({p.io.stderr_r.get(), POLLIN, 0});
          targets.push_back({Source::Stderr, cid, p.exec_id});
        }
        if (p.io.stdin_w.valid() && !p.stdin_buffer.empty()) {
          fds.push_back({p.io.stdin_w.get(), POLLOUT, 0});
          targets.push_back({Source::Stdin, cid, p.exec_id});
        }
      };
      if (c.init) add(*c.init);
      for (auto& [eid, e] : c.execs) add(*e);
    }

    int timeout = pending_mounts_.empty() ? -1 : static_cast<int>(kPendingMountPollMs);
    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) fail_errno(errno, "poll");

    // One failing handler (an allocation that fails, a bug) must not end PID 1 and with it the
    // guest: log it and keep serving. Requests report their own errors in on_frame.
    try {
      for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        const Target& t = targets[i];
        if (t.source == Source::Channel) {
          if (fds[i].revents & (POLLOUT | POLLERR | POLLHUP)) {
            if (!channel_->flush()) {
              log("the host closed the channel");
              if (!options_.pid1) {
                kill_everything();
                return 0;
              }
            }
          }
          if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
            auto result = channel_->read_some([this](std::string_view p) { on_frame(p); },
                                              [this](uint32_t length) {
                                                send_error(0, "EFRAME",
                                                           "frame length " + std::to_string(length) +
                                                               " is outside 2.." + std::to_string(NV_FRAME_MAX_PAYLOAD) +
                                                               "; skipped");
                                              });
            if (result == Channel::ReadResult::Closed) {
              log("the agent channel closed");
              if (!options_.pid1) {
                kill_everything();
                return 0;
              }
              // As PID 1 there is no one else to serve: reopen and wait for the host again.
              ::usleep(100 * 1000);
              open_channel();
            }
          }
          continue;
        }
        if (t.source == Source::Signal) {
          signalfd_siginfo info;
          while (::read(signal_fd_.get(), &info, sizeof info) > 0) {
          }
          reap_children();
          continue;
        }
        auto cit = containers_.find(t.container_id);
        if (cit == containers_.end()) continue;
        Proc* p = nullptr;
        if (t.exec_id.empty()) {
          p = cit->second.init.get();
        } else {
          auto eit = cit->second.execs.find(t.exec_id);
          if (eit != cit->second.execs.end()) p = eit->second.get();
        }
        if (p == nullptr) continue;
        switch (t.source) {
          case Source::Status: on_status(*p); break;
          case Source::Stdout: on_output(*p, false); break;
          case Source::Stderr: on_output(*p, true); break;
          case Source::Stdin: on_stdin_writable(*p); break;
          default: break;
        }
      }
      // A SIGCHLD may have been consumed while handling other fds; reaping is cheap and idempotent.
      reap_children();
      check_pending_mounts();
      forget_finished_execs();
    } catch (const std::exception& e) {
      log("error while serving events (going on): %s", e.what());
    }
    if (!channel_->flush() && !options_.pid1) {
      log("the host closed the channel");
      kill_everything();
      return 0;
    }
  }
}

// ---- Frames. ----

void Agent::send_ok(uint64_t id, const std::function<void(json::Writer&)>& fill) {
  json::Writer w;
  w.begin_object().key("id").number(static_cast<int64_t>(id)).key("type").string("ok");
  if (fill) fill(w);
  w.end_object();
  channel_->send(w.take());
}

void Agent::send_error(uint64_t id, const std::string& code, const std::string& message) {
  json::Writer w;
  // Messages quote host input; keep frames small whatever the input was.
  std::string text = message.size() > 4096 ? message.substr(0, 4096) + "..." : message;
  w.begin_object()
      .key("id").number(static_cast<int64_t>(id))
      .key("type").string("error")
      .key("code").string(code)
      .key("message").string(text)
      .end_object();
  channel_->send(w.take());
}

void Agent::on_frame(std::string_view payload) {
  json::ParseResult parsed = json::parse(payload);
  if (!parsed.value) {
    send_error(0, "EBADFRAME", "invalid JSON: " + parsed.error);
    return;
  }
  const json::Value& message = *parsed.value;
  if (!message.is_object()) {
    send_error(0, "EBADFRAME", "a frame must hold a JSON object");
    return;
  }
  const json::Value* id_value = message.get("id");
  std::optional<int64_t> id = id_value != nullptr ? id_value->as_int() : std::nullopt;
  if (!id || *id < 1 || *id > kMaxRequestId) {
    send_error(0, "EBADFRAME", "a request needs an integer id between 1 and 2^53-1");
    return;
  }
  const json::Value* type = message.get("type");
  if (type == nullptr || !type->is_string()) {
    send_error(static_cast<uint64_t>(*id), "EBADFRAME", "a request needs a string type");
    return;
  }
  try {
    dispatch(static_cast<uint64_t>(*id), type->as_string(), Fields(message));
  } catch (const AgentError& e) {
    send_error(static_cast<uint64_t>(*id), e.code, e.message);
  } catch (const std::exception& e) {  // bad_alloc and the like: answer, do not die (we may be PID 1)
    send_error(static_cast<uint64_t>(*id), "EFAULT", std::string("internal error: ") + e.what());
  }
}

void Agent::dispatch(uint64_t id, const std::string& type, const Fields& f) {
  if (type == "ping") {
    send_ok(id, [](json::Writer& w) {
      w.key("agent").string("nodevisor-agent").key("version").number(NV_PROTOCOL_VERSION);
      w.key("pid").number(::getpid());
    });
  } else if (type == "echo") {
    std::string data = f.string("data");
    send_ok(id, [&](json::Writer& w) { w.key("data").string(data); });
  } else if (type == "time.sync") {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(f.integer("sec", 0, int64_t{1} << 40));
    ts.tv_nsec = static_cast<long>(f.integer("nsec", 0, 999999999));
    if (::clock_settime(CLOCK_REALTIME, &ts) != 0) fail_errno(errno, "clock_settime");
    send_ok(id);
  } else if (type == "rng.reseed") {
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
  } else if (type == "disk.checksum") {
    handle_disk_checksum(id, f);
  } else if (type == "storage.mount") {
    handle_storage_mount(id, f);
  } else if (type == "storage.unmount") {
    unmount(f.path("mountPoint"));
    send_ok(id);
  } else if (type == "container.create") {
    handle_create(id, f);
  } else if (type == "container.start") {
    handle_start(id, f);
  } else if (type == "exec") {
    handle_exec(id, f);
  } else if (type == "container.wait") {
    handle_wait(id, f);
  } else if (type == "container.signal") {
    handle_signal(f);
    send_ok(id);
  } else if (type == "stdin") {
    handle_stdin(f);
    send_ok(id);
  } else if (type == "container.destroy") {
    handle_destroy(id, f);
  } else {
    std::string shown = type.size() > 64 ? type.substr(0, 64) + "..." : type;
    fail("EUNKNOWN", "unknown request type \"" + shown + "\"");
  }
}

// ---- Storage. ----

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
  Crc32 crc;
  std::vector<unsigned char> buffer(64 * 1024);
  int64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<int64_t>(length - done, static_cast<int64_t>(buffer.size())));
    ssize_t n = ::pread(fd.get(), buffer.data(), want, offset + done);
    if (n < 0) fail_errno(errno, "read " + path);
    if (n == 0) fail("EINVAL", "range beyond the end of " + path);
    crc.update(buffer.data(), static_cast<size_t>(n));
    done += n;
  }
  send_ok(id, [&](json::Writer& w) { w.key("crc32").number(crc.value()); });
}

// ---- Containers. ----

Agent::Container& Agent::container(const std::string& id) {
  auto it = containers_.find(id);
  if (it == containers_.end() || it->second.failed) fail("ENOENT", "no container \"" + id + "\"");
  return it->second;
}

Agent::Proc& Agent::proc(const Fields& f) {
  Container& c = container(f.id("containerId"));
  auto exec_id = f.optional_id("execId");
  if (!exec_id) return *c.init;
  auto it = c.execs.find(*exec_id);
  if (it == c.execs.end()) fail("ENOENT", "no exec \"" + *exec_id + "\" in container \"" + c.id + "\"");
  return *it->second;
}

Agent::Proc* Agent::find_proc(pid_t pid) {
  // Only live processes: a record of one that already exited (kept until its wait or the
  // container's destroy) may carry a pid number the kernel has since given to another.
  for (auto& [cid, c] : containers_) {
    if (c.init && !c.init->exited && c.init->io.pid == pid) return c.init.get();
    for (auto& [eid, e] : c.execs) {
      if (!e->exited && e->io.pid == pid) return e.get();
    }
  }
  return nullptr;
}

void Agent::handle_create(uint64_t id, const Fields& f) {
  std::string cid = f.id("containerId");
  ContainerSetup setup;
  setup.rootfs = f.path("rootfs");
  setup.hostname = f.optional_string("hostname").value_or(cid);
  if (setup.hostname.empty() || setup.hostname.size() > 64) fail("EINVAL", "hostname must be 1 to 64 bytes");
  setup.no_pivot = options_.no_pivot;
  ProcessSpec process = parse_process(f);
  if (containers_.count(cid) != 0) fail("EEXIST", "container \"" + cid + "\" exists");
  if (containers_.size() >= kMaxContainers) fail("EAGAIN", "too many containers");
  struct stat st {};
  if (::stat(setup.rootfs.c_str(), &st) != 0) fail_errno(errno, "rootfs " + setup.rootfs);
  if (!S_ISDIR(st.st_mode)) fail("ENOTDIR", "rootfs " + setup.rootfs + " is not a directory");

  auto p = std::make_unique<Proc>();
  p->container_id = cid;
  p->io = spawn_container_init(process, setup);
  p->pending = Pending::Create;
  p->pending_request = id;
  Container& c = containers_[cid];
  c.id = cid;
  c.init = std::move(p);
  // The answer comes from on_status: 'R' (ready), 'E' (setup failed) or end-of-file (died).
}

void Agent::handle_start(uint64_t id, const Fields& f) {
  Container& c = container(f.id("containerId"));
  Proc& p = *c.init;
  if (p.phase != Proc::Phase::Created || p.exited || c.destroying) {
    fail("ESTATE", "container \"" + c.id + "\" is not created-and-not-started");
  }
  char go = 1;
  if (::write(p.io.start_w.get(), &go, 1) != 1) fail_errno(errno, "start container " + c.id);
  p.io.start_w.reset();
  p.phase = Proc::Phase::Starting;
  p.pending = Pending::Start;
  p.pending_request = id;
}

void Agent::handle_exec(uint64_t id, const Fields& f) {
  Container& c = container(f.id("containerId"));
  std::string eid = f.id("execId");
  ProcessSpec process = parse_process(f);
  if (c.destroying || c.init->exited || c.init->phase != Proc::Phase::Running) {
    fail("ESTATE", "container \"" + c.id + "\" is not running");
  }
  if (c.execs.count(eid) != 0) fail("EEXIST", "exec \"" + eid + "\" exists in container \"" + c.id + "\"");
  if (c.execs.size() >= kMaxExecsPerContainer) fail("EAGAIN", "too many execs in container " + c.id);
  auto p = std::make_unique<Proc>();
  p->container_id = c.id;
  p->exec_id = eid;
  p->io = spawn_exec(process, c.init->io.pidfd.get());
  p->pending = Pending::Exec;
  p->pending_request = id;
  c.execs[eid] = std::move(p);
}

void Agent::handle_wait(uint64_t id, const Fields& f) {
  Proc& p = proc(f);
  p.waiters.push_back(id);
  if (p.exited) answer_waiters(p);
}

void Agent::handle_signal(const Fields& f) {
  int sig = static_cast<int>(f.integer("signal", 1, 64));
  Proc& p = proc(f);
  if (p.exited) fail("ESRCH", "the process has exited");
  // The pid cannot be reused before the agent reaps it, and it has not been reaped (not exited).
  if (::kill(p.io.pid, sig) != 0) fail_errno(errno, "kill");
}

void Agent::handle_stdin(const Fields& f) {
  auto data = f.optional_string("data");
  bool eof = f.optional_bool("eof", false);
  Proc& p = proc(f);
  std::string bytes;
  if (data) {
    auto decoded = base64::decode(*data);
    if (!decoded) fail("EINVAL", "data must be base64");
    bytes = std::move(*decoded);
  }
  if (!p.io.stdin_w.valid() || p.stdin_close_when_flushed) fail("EPIPE", "stdin of the process is closed");
  if (p.stdin_buffer.size() + bytes.size() > kStdinLimit) fail("EAGAIN", "stdin buffer full (1 MiB)");
  p.stdin_buffer += bytes;
  p.stdin_close_when_flushed = eof;
  on_stdin_writable(p);
}

void Agent::handle_destroy(uint64_t id, const Fields& f) {
  std::string cid = f.id("containerId");
  Container& c = container(cid);
  if (c.destroying) fail("ESTATE", "container \"" + cid + "\" is being destroyed");
  c.destroying = true;
  c.destroy_request = id;
  // SIGKILL to the first process ends its PID namespace (the kernel kills the rest); execs are
  // in that namespace too, but are signalled directly in case it had already died.
  if (!c.init->exited) ::kill(c.init->io.pid, SIGKILL);
  for (auto& [eid, e] : c.execs) {
    if (!e->exited) ::kill(e->io.pid, SIGKILL);
  }
  maybe_finish_container(cid);
}

// ---- Process events. ----

void Agent::on_status(Proc& p) {
  if (!p.io.status_r.valid()) return;
  ChildReport report{};
  ssize_t n = ::read(p.io.status_r.get(), &report, sizeof report);
  if (n < 0) return;  // EAGAIN
  std::string cid = p.container_id;
  if (n == static_cast<ssize_t>(sizeof report) && report.tag == 'R' && p.pending == Pending::Create) {
    p.phase = Proc::Phase::Created;
    p.pending = Pending::None;
    pid_t pid = p.io.pid;
    send_ok(p.pending_request, [&](json::Writer& w) { w.key("pid").number(pid); });
    return;
  }
  if (n == static_cast<ssize_t>(sizeof report) && report.tag == 'E') {
    report.step[sizeof report.step - 1] = '\0';
    std::string what = std::string(report.step) + ": " + std::strerror(report.error);
    if (p.pending != Pending::None) send_error(p.pending_request, errno_name(report.error), what);
    if (p.pending == Pending::Create) {
      // Setup failed: the container never existed for the host. It is removed when reaped.
      containers_[cid].failed = true;
      ::kill(p.io.pid, SIGKILL);
    }
    p.pending = Pending::None;
    return;
  }
  // End of file (or a short read, which a pipe never gives for 52 bytes): execve happened, or the
  // child died without a word.
  on_status_end(p);
}

void Agent::on_status_end(Proc& p) {
  std::string cid = p.container_id;
  p.io.status_r.reset();
  if (p.pending == Pending::Start || p.pending == Pending::Exec) {
    p.phase = Proc::Phase::Running;
    pid_t pid = p.io.pid;
    if (p.pending == Pending::Exec) {
      send_ok(p.pending_request, [&](json::Writer& w) { w.key("pid").number(pid); });
    } else {
      send_ok(p.pending_request);
    }
  } else if (p.pending == Pending::Create) {
    send_error(p.pending_request, "ECHILD", "the container's process ended during setup");
    containers_[cid].failed = true;
  }
  p.pending = Pending::None;
}

void Agent::on_output(Proc& p, bool is_stderr) {
  UniqueFd& fd = is_stderr ? p.io.stderr_r : p.io.stdout_r;
  // poll results are per iteration: the pipe may have been drained and closed since (on_exited).
  if (!fd.valid()) return;
  char buffer[kOutputChunk];
  ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  json::Writer w;
  w.begin_object().key("id").number(0).key("type").string("stdio").key("containerId").string(p.container_id);
  if (!p.exec_id.empty()) w.key("execId").string(p.exec_id);
  w.key("stream").string(is_stderr ? "stderr" : "stdout");
  if (n > 0) {
    w.key("data").string(base64::encode(std::string_view(buffer, static_cast<size_t>(n))));
  } else {
    w.key("eof").boolean(true);
    fd.reset();
  }
  w.end_object();
  channel_->send(w.take());
}

void Agent::on_stdin_writable(Proc& p) {
  while (!p.stdin_buffer.empty() && p.io.stdin_w.valid()) {
    ssize_t n = ::write(p.io.stdin_w.get(), p.stdin_buffer.data(), p.stdin_buffer.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      p.stdin_buffer.clear();  // EPIPE: nobody reads it any more
      p.io.stdin_w.reset();
      return;
    }
    p.stdin_buffer.erase(0, static_cast<size_t>(n));
  }
  if (p.stdin_buffer.empty() && p.stdin_close_when_flushed) p.io.stdin_w.reset();
}

void Agent::reap_children() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;  // 0: children left but none exited; -1 ECHILD: none at all
    Proc* p = find_proc(pid);
    if (p != nullptr) on_exited(*p, status);
    // Anything else is an orphan we inherited as PID 1 or subreaper: reaping it is all we owe it.
  }
}

void Agent::on_exited(Proc& p, int status) {
  p.exited = true;
  if (WIFEXITED(status)) p.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) p.signal = WTERMSIG(status);
  std::string cid = p.container_id;
  // Settle create/start/exec answers from what the child left in the status pipe. The child is
  // gone, so its end of the pipe is closed and a few reads reach end-of-file; but a process in the container may hold a copy of the pipe's write end
  // (pidfd_getfd): then there is no end-of-file, and the exit settles the answer instead.
  for (int i = 0; i < 4 && p.io.status_r.valid(); ++i) on_status(p);
  if (p.io.status_r.valid()) on_status_end(p);
  // Send the output it left behind before the exit. A pipe still held open by a descendant
  // (an exec's background job) ends later, through the main loop.
  for (bool is_stderr : {false, true}) {
    UniqueFd& fd = is_stderr ? p.io.stderr_r : p.io.stdout_r;
    for (int chunk = 0; chunk < 64 && fd.valid(); ++chunk) {
      pollfd probe{fd.get(), POLLIN, 0};
      if (::poll(&probe, 1, 0) <= 0) break;
      on_output(p, is_stderr);
    }
  }
  p.io.stdin_w.reset();
  p.io.start_w.reset();
  p.io.pidfd.reset();
  p.stdin_buffer.clear();

  Container& c = containers_[cid];
  if (!c.failed) {
    json::Writer w;
    w.begin_object().key("id").number(0).key("type").string("exit").key("containerId").string(cid);
    if (!p.exec_id.empty()) w.key("execId").string(p.exec_id);
    exit_fields(w, p.exit_code, p.signal);
    w.end_object();
    channel_->send(w.take());
  }
  answer_waiters(p);
  maybe_finish_container(cid);
}

void Agent::answer_waiters(Proc& p) {
  for (uint64_t id : p.waiters) {
    send_ok(id, [&](json::Writer& w) { exit_fields(w, p.exit_code, p.signal); });
    p.waited = true;
  }
  p.waiters.clear();
}

// Main loop, at the end of an iteration (no Proc reference is held then): an exec whose exit the
// host has collected with container.wait, and whose output pipes are closed, is forgotten, so a
// long-lived container does not collect records and its exec id can be used again.
void Agent::forget_finished_execs() {
  for (auto& [cid, c] : containers_) {
    std::erase_if(c.execs, [](const auto& entry) {
      const Proc& e = *entry.second;
      return e.exited && e.waited && !e.io.stdout_r.valid() && !e.io.stderr_r.valid();
    });
  }
}

void Agent::maybe_finish_container(const std::string& id) {
  auto it = containers_.find(id);
  if (it == containers_.end()) return;
  Container& c = it->second;
  if (!c.destroying && !c.failed) return;
  if (!c.init->exited) return;
  for (auto& [eid, e] : c.execs) {
    if (!e->exited) return;
  }
  uint64_t request = c.destroy_request;
  bool destroying = c.destroying;
  // Dropping the records closes every fd (pipes, pidfds): nothing keeps the container's mount
  // namespace alive, so its /proc, /dev and rootfs bind mount go with it.
  containers_.erase(it);
  if (destroying) send_ok(request);
}

void Agent::kill_everything() {
  for (auto& [cid, c] : containers_) {
    if (c.init && !c.init->exited) ::kill(c.init->io.pid, SIGKILL);
    for (auto& [eid, e] : c.execs) {
      if (!e->exited) ::kill(e->io.pid, SIGKILL);
    }
  }
  while (::waitpid(-1, nullptr, 0) > 0) {
  }
  containers_.clear();
}

}  // namespace nv::agent
