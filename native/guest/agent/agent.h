// The agent's request server. One thread (the process's main thread) runs everything: a poll(2)
// loop over the channel, a signalfd for SIGCHLD, and each container process's pipes. The class
// is defined in three files: agent.cc (the loop, frames, dispatch), requests.cc (requests that
// are not about containers) and containers.cc (containers and their processes). Keeping it
// single-threaded is deliberate: forking without exec in spawn.cc and reaping by waitpid(-1) are
// only safe when no other thread exists.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "channel.h"
#include "guest/protocol/json.h"
#include "request.h"
#include "spawn.h"
#include "storage.h"
#include "sys/unique_fd.h"

namespace nodevisor::agent {

using nodevisor::UniqueFd;

struct Options {
  int channel_fd = -1;            // host mode: an inherited socket
  std::string channel_path;       // host mode: a path to open; or /dev/hvc0 as PID 1
  std::string sys_block = "/sys/block";
  bool pid1 = false;              // boot duties done; reopen the channel when it closes
  bool no_pivot = false;
};

class Agent {
 public:
  explicit Agent(Options options);
  // Serves until the channel closes (host mode) → exit status. As PID 1 it never returns.
  int run();

 private:
  enum class Pending { None, Create, Start, Exec };

  struct Proc {
    std::string container_id;
    std::string exec_id;  // empty for the container's first process
    Spawned io;
    enum class Phase { Setup, Created, Starting, Running } phase = Phase::Setup;
    Pending pending = Pending::None;
    uint64_t pending_request = 0;
    bool exited = false;
    int exit_code = -1;
    int signal = -1;
    std::vector<uint64_t> waiters;
    bool waited = false;  // a container.wait was answered after the exit
    std::string stdin_buffer;
    bool stdin_close_when_flushed = false;
  };

  struct Container {
    std::string id;
    std::unique_ptr<Proc> init;
    std::map<std::string, std::unique_ptr<Proc>> execs;
    bool destroying = false;
    uint64_t destroy_request = 0;
    bool failed = false;  // setup failed: removed once its process is reaped
  };

  struct PendingMount {
    uint64_t request;
    std::string serial;
    std::string fstype;
    MountOptions options;
    std::string mount_point;
    int64_t deadline_ms;
  };

  // Which fd of the poll set belongs to whom.
  struct PollTarget {
    enum class Source { Channel, Signal, Status, Stdout, Stderr, Stdin } source;
    std::string container_id;
    std::string exec_id;
  };

  // The loop (agent.cc).
  void build_poll_set();
  bool on_channel_ready(short revents);  // false: end serving (host mode, the host went away)
  void on_signal();
  void on_process_fd(const PollTarget& target);

  // Channel side (agent.cc).
  void open_channel();
  void on_frame(std::string_view payload);
  void dispatch(uint64_t id, const std::string& type, const Fields& f);
  void send_ok(uint64_t id, const std::function<void(json::Writer&)>& fill = {});
  void send_error(uint64_t id, const std::string& code, const std::string& message);

  // Requests: each answers or throws AgentError. requests.cc:
  void handle_ping(uint64_t id, const Fields& f);
  void handle_echo(uint64_t id, const Fields& f);
  void handle_time_sync(uint64_t id, const Fields& f);
  void handle_rng_reseed(uint64_t id, const Fields& f);
  void handle_disk_checksum(uint64_t id, const Fields& f);
  void handle_storage_mount(uint64_t id, const Fields& f);
  void handle_storage_unmount(uint64_t id, const Fields& f);
  void handle_network_update(uint64_t id, const Fields& f);  // network.cc
  void check_pending_mounts();
  // containers.cc:
  void handle_create(uint64_t id, const Fields& f);
  void handle_start(uint64_t id, const Fields& f);
  void handle_exec(uint64_t id, const Fields& f);
  void handle_wait(uint64_t id, const Fields& f);
  void handle_signal(uint64_t id, const Fields& f);
  void handle_stdin(uint64_t id, const Fields& f);
  void handle_destroy(uint64_t id, const Fields& f);

  // Processes (containers.cc).
  Container& container(const std::string& id);
  Proc& proc(const Fields& f);
  Proc* find_proc(pid_t pid);
  void on_status(Proc& p);
  void on_status_end(Proc& p);  // the status pipe ended (or its process did): settle the answer
  void on_output(Proc& p, bool is_stderr);
  void on_stdin_writable(Proc& p);
  void reap_children();
  void on_exited(Proc& p, int status);
  void answer_waiters(Proc& p);
  void maybe_finish_container(const std::string& id);
  void forget_finished_execs();
  void kill_everything();

  Options options_;
  UniqueFd channel_fd_;
  std::unique_ptr<Channel> channel_;
  UniqueFd signal_fd_;
  std::map<std::string, Container> containers_;
  std::vector<PendingMount> pending_mounts_;
  std::vector<pollfd> poll_fds_;          // build_poll_set's result, one entry per
  std::vector<PollTarget> poll_targets_;  // ... target
};

}  // namespace nodevisor::agent
