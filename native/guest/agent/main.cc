// nodevisor-agent: the guest's /init, and the same binary in host-mode tests.
//
//   nodevisor-agent                      as PID 1: boot duties, then serve on /dev/hvc0
//   nodevisor-agent --channel-fd N       serve on an inherited fd (a socketpair end)
//   nodevisor-agent --channel PATH       serve on a path
//   options: --sys-block DIR (where disks are looked up by serial), --no-pivot,
//            --boot (tests: do the PID-1 boot duties with --channel-fd too; only as PID 1 of a
//            fresh PID namespace, which the test makes with a private mount namespace and root)
//
// Single-threaded (see agent.h). docs/protocol.md describes what it serves.
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "agent.h"
#include "errors.h"
#include "init.h"
#include "log.h"

using nodevisor::agent::AgentError;
using nodevisor::agent::log;

namespace {

[[noreturn]] void usage(const char* why) {
  log("%s", why);
  log("usage: nodevisor-agent [--channel-fd N | --channel PATH] [--sys-block DIR] [--no-pivot]");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  nodevisor::agent::Options options;
  bool boot = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--channel-fd") {
      char* end = nullptr;
      std::string v = value();
      long fd = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || fd < 0 || fd > 65535) usage("--channel-fd needs a descriptor number");
      options.channel_fd = static_cast<int>(fd);
    } else if (arg == "--channel") {
      options.channel_path = value();
    } else if (arg == "--sys-block") {
      options.sys_block = value();
    } else if (arg == "--no-pivot") {
      options.no_pivot = true;
    } else if (arg == "--boot") {
      boot = true;
    } else {
      // The kernel passes unknown command-line words to init as arguments: ignore them as PID 1.
      if (::getpid() != 1) usage(("unknown argument " + arg).c_str());
    }
  }

  // Whatever fds we were started with (a test harness's, a shell's) must not reach a container
  // either: close-on-exec for all of them, as for every fd the agent opens itself.
  ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);

  bool host_mode = options.channel_fd >= 0 || !options.channel_path.empty();
  if (!host_mode) {
    if (::getpid() != 1) usage("give --channel-fd or --channel when not running as PID 1");
    options.pid1 = true;
    options.channel_path = "/dev/hvc0";
    nodevisor::agent::boot_as_pid1();
  } else if (boot) {
    // Refused outside a fresh PID namespace, so a stray --boot cannot mount over a host's /dev.
    if (::getpid() != 1) usage("--boot is for PID 1 of a private namespace only");
    nodevisor::agent::boot_as_pid1();
  } else {
    nodevisor::agent::ensure_stdio_open();
    // Orphans of our children come to us, as they would to PID 1 in a guest, and get reaped.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  }

  try {
    nodevisor::agent::Agent agent(options);
    return agent.run();
  } catch (const AgentError& e) {
    log("fatal: %s (%s)", e.message.c_str(), e.code.c_str());
  } catch (const std::exception& e) {
    log("fatal: %s", e.what());
  }
  if (options.pid1) nodevisor::agent::power_off();
  return 1;
}
