// Containers and their processes: container.create, container.start, exec, container.wait,
// container.signal, stdin and container.destroy, and what the main loop does when a process's
// status pipe, output pipes or stdin become ready, or when it exits. Main loop thread.
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent.h"
#include "errors.h"
#include "guest/protocol/base64.h"

namespace nodevisor::agent {

namespace {

constexpr size_t kStdinLimit = 1u << 20;
constexpr size_t kMaxContainers = 1024;
constexpr size_t kMaxExecsPerContainer = 256;
constexpr size_t kOutputChunk = 64 * 1024;

void exit_fields(json::Writer& w, int exit_code, int signal) {
  w.key("exitCode");
  if (exit_code >= 0) w.number(exit_code); else w.null();
  w.key("signal");
  if (signal >= 0) w.number(signal); else w.null();
}

}  // namespace

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

void Agent::handle_signal(uint64_t id, const Fields& f) {
  int sig = static_cast<int>(f.integer("signal", 1, 64));
  Proc& p = proc(f);
  if (p.exited) fail("ESRCH", "the process has exited");
  // The pid cannot be reused before the agent reaps it, and it has not been reaped (not exited).
  if (::kill(p.io.pid, sig) != 0) fail_errno(errno, "kill");
  send_ok(id);
}

void Agent::handle_stdin(uint64_t id, const Fields& f) {
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
  send_ok(id);
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

}  // namespace nodevisor::agent
