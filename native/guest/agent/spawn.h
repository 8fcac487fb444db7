// Creating container processes. The main loop thread calls these; each forks a child (clone3)
// that runs only the setup code in spawn.cc and then execve()s, so no other agent code runs in a
// child. The agent is single-threaded, which is what makes clone3 without CLONE_VM safe.
//
// The container is hostile (docs/threads-and-trust.md): a root process in it may watch for new
// pids and take fds from them (pidfd_getfd) or ptrace them. So no process holding an agent fd
// ever appears in a container's PID namespace: a container's first process is alone in its new
// namespace until it has closed them; an exec goes through a helper, forked in the agent's PID
// namespace, that makes itself non-dumpable, closes every fd but the child's pipes, joins all
// the container's namespaces (setns on its pidfd) and only then forks the real child
// (CLONE_PARENT, so the agent reaps it). Every agent fd is close-on-exec as well.
//
// The child reports through a close-on-exec "status" pipe: a ChildReport with tag 'R' when the
// first process of a container finished its setup and waits for container.start, tag 'E' with the
// failing step and errno when setup or execve failed; end-of-file without 'E' after the start
// means execve succeeded.
#pragma once

#include <sys/types.h>

#include <string>

#include "request.h"
#include "sys/unique_fd.h"

namespace nodevisor::agent {

using nodevisor::UniqueFd;

struct ChildReport {
  char tag;        // 'R' ready, 'E' error
  char step[43];   // NUL-terminated name of the failing step
  int32_t error;   // errno
};
static_assert(sizeof(ChildReport) <= 64, "written atomically to a pipe");

struct Spawned {
  pid_t pid = -1;
  UniqueFd pidfd;     // for setns of later execs and for signals without pid reuse races
  UniqueFd stdin_w;   // agent ends, non-blocking, close-on-exec
  UniqueFd stdout_r;
  UniqueFd stderr_r;
  UniqueFd status_r;
  UniqueFd start_w;   // first process only: one byte lets it execve; closing it without one ends it
};

struct ContainerSetup {
  std::string rootfs;    // absolute path in the agent's mount namespace
  std::string hostname;
  bool no_pivot = false;  // use MS_MOVE + chroot instead of pivot_root (initramfs roots need it)
};

// The first process: new mount, PID, UTS and IPC namespaces; stops before execve until start.
Spawned spawn_container_init(const ProcessSpec& process, const ContainerSetup& setup);

// Another process in the namespaces of the running process `container_pidfd`, through the exec
// helper. Throws AgentError when the helper could not join the namespaces or fork.
Spawned spawn_exec(const ProcessSpec& process, int container_pidfd);

}  // namespace nodevisor::agent
