// The agent's main loop (Agent::run) and its three kinds of events: the channel (frames in,
// queued frames out), the SIGCHLD signalfd, and each container process's fds. Requests are
// decoded here and dispatched through a table to requests.cc and containers.cc. Main loop thread.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "agent.h"
#include "errors.h"
#include "guest/protocol/frame.h"
#include "log.h"

namespace nodevisor::agent {

namespace {

constexpr size_t kSoftOutputLimit = 4u << 20;   // stop reading process output above this
constexpr size_t kHardOutputLimit = 16u << 20;  // stop reading requests above this
constexpr int64_t kMaxRequestId = (int64_t{1} << 53) - 1;
constexpr int kPendingMountPollMs = 10;

// Request type → handler. Each handler answers (send_ok / send_error) or throws AgentError.
struct Route {
  std::string_view type;
  void (Agent::*handler)(uint64_t id, const Fields& f);
};

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

  for (;;) {
    build_poll_set();
    int timeout = pending_mounts_.empty() ? -1 : kPendingMountPollMs;
    int ready = ::poll(poll_fds_.data(), poll_fds_.size(), timeout);
    if (ready < 0 && errno != EINTR) fail_errno(errno, "poll");

    // One failing handler (an allocation that fails, a bug, a channel that cannot be reopened)
    // must not end PID 1 and with it the guest: log it and keep serving. Requests report their
    // own errors in on_frame.
    try {
      for (size_t i = 0; ready > 0 && i < poll_fds_.size(); ++i) {
        short revents = poll_fds_[i].revents;
        if (revents == 0) continue;
        const PollTarget& t = poll_targets_[i];
        if (t.source == PollTarget::Source::Channel) {
          if (!on_channel_ready(revents)) return 0;
        } else if (t.source == PollTarget::Source::Signal) {
          on_signal();
        } else {
          on_process_fd(t);
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

// Which fds to wait for, rebuilt every iteration because processes come and go. Output pipes
// are left out while the channel's queue is over the soft limit (the processes then block on
// write instead of the agent growing), requests while it is over the hard one.
void Agent::build_poll_set() {
  poll_fds_.clear();
  poll_targets_.clear();
  auto add = [&](int fd, short events, PollTarget::Source source, const std::string& cid, const std::string& eid) {
    poll_fds_.push_back({fd, events, 0});
    poll_targets_.push_back({source, cid, eid});
  };
  short channel_events = 0;
  if (channel_->queued() < kHardOutputLimit) channel_events |= POLLIN;
  if (channel_->queued() > 0) channel_events |= POLLOUT;
  add(channel_fd_.get(), channel_events, PollTarget::Source::Channel, {}, {});
  add(signal_fd_.get(), POLLIN, PollTarget::Source::Signal, {}, {});
  bool output_room = channel_->queued() < kSoftOutputLimit;
  for (auto& [cid, c] : containers_) {
    auto add_proc = [&](Proc& p) {
      if (p.io.status_r.valid()) add(p.io.status_r.get(), POLLIN, PollTarget::Source::Status, cid, p.exec_id);
      if (output_room && p.io.stdout_r.valid()) add(p.io.stdout_r.get(), POLLIN, PollTarget::Source::Stdout, cid, p.exec_id);
      if (output_room && p.io.stderr_r.valid()) add(p.io.stderr_r.get(), POLLIN, PollTarget::Source::Stderr, cid, p.exec_id);
      if (p.io.stdin_w.valid() && !p.stdin_buffer.empty()) {
        add(p.io.stdin_w.get(), POLLOUT, PollTarget::Source::Stdin, cid, p.exec_id);
      }
    };
    if (c.init) add_proc(*c.init);
    for (auto& [eid, e] : c.execs) add_proc(*e);
  }
}

// The channel is writable, readable or closed. Returns false when the agent should end (host
// mode, the host went away); as PID 1 it reopens the channel instead.
bool Agent::on_channel_ready(short revents) {
  if (revents & (POLLOUT | POLLERR | POLLHUP)) {
    if (!channel_->flush()) {
      log("the host closed the channel");
      if (!options_.pid1) {
        kill_everything();
        return false;
      }
    }
  }
  if (revents & (POLLIN | POLLHUP | POLLERR)) {
    auto result = channel_->read_some([this](std::string_view p) { on_frame(p); },
                                      [this](uint32_t length) {
                                        send_error(0, "EFRAME",
                                                   "frame length " + std::to_string(length) + " is outside 2.." +
                                                       std::to_string(NV_FRAME_MAX_PAYLOAD) + "; skipped");
                                      });
    if (result == Channel::ReadResult::Closed) {
      log("the agent channel closed");
      if (!options_.pid1) {
        kill_everything();
        return false;
      }
      // As PID 1 there is no one else to serve: reopen and wait for the host again. A failure
      // throws to run()'s catch-all, and the next poll (POLLHUP again) retries.
      ::usleep(100 * 1000);
      open_channel();
    }
  }
  return true;
}

void Agent::on_signal() {
  signalfd_siginfo info;
  while (::read(signal_fd_.get(), &info, sizeof info) > 0) {
  }
  reap_children();
}

void Agent::on_process_fd(const PollTarget& t) {
  // Looked up again by id: an earlier event of this iteration may have removed the process.
  auto cit = containers_.find(t.container_id);
  if (cit == containers_.end()) return;
  Proc* p = nullptr;
  if (t.exec_id.empty()) {
    p = cit->second.init.get();
  } else {
    auto eit = cit->second.execs.find(t.exec_id);
    if (eit != cit->second.execs.end()) p = eit->second.get();
  }
  if (p == nullptr) return;
  switch (t.source) {
    case PollTarget::Source::Status: on_status(*p); break;
    case PollTarget::Source::Stdout: on_output(*p, false); break;
    case PollTarget::Source::Stderr: on_output(*p, true); break;
    case PollTarget::Source::Stdin: on_stdin_writable(*p); break;
    default: break;
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
  static constexpr Route kRoutes[] = {
      {"ping", &Agent::handle_ping},
      {"echo", &Agent::handle_echo},
      {"time.sync", &Agent::handle_time_sync},
      {"rng.reseed", &Agent::handle_rng_reseed},
      {"disk.checksum", &Agent::handle_disk_checksum},
      {"storage.mount", &Agent::handle_storage_mount},
      {"storage.unmount", &Agent::handle_storage_unmount},
      {"network.update", &Agent::handle_network_update},
      {"container.create", &Agent::handle_create},
      {"container.start", &Agent::handle_start},
      {"exec", &Agent::handle_exec},
      {"container.wait", &Agent::handle_wait},
      {"container.signal", &Agent::handle_signal},
      {"stdin", &Agent::handle_stdin},
      {"container.destroy", &Agent::handle_destroy},
  };
  for (const auto& route : kRoutes) {
    if (route.type == type) {
      (this->*route.handler)(id, f);
      return;
    }
  }
  std::string shown = type.size() > 64 ? type.substr(0, 64) + "..." : type;
  fail("EUNKNOWN", "unknown request type \"" + shown + "\"");
}

}  // namespace nodevisor::agent
