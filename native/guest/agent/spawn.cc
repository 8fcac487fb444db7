#include "spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"
#include "privileges.h"
#include "seccomp.h"

namespace nodevisor::agent {

namespace {

// The kernel's struct clone_args (v0, 64 bytes), written out here because <linux/sched.h> and
// glibc's <sched.h> disagree on some macros.
struct CloneArgs {
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
};

constexpr unsigned kPidfdFlag = 0x00001000;  // CLONE_PIDFD

// Everything the child needs, prepared by the parent so the child only makes system calls.
struct Plan {
  std::vector<std::string> candidates;  // full paths to try for args[0]
  std::vector<char*> argv;
  std::vector<char*> envp;
  const ProcessSpec* process = nullptr;
  const ContainerSetup* setup = nullptr;  // null for exec
  int container_pidfd = -1;               // exec only: the helper joins its namespaces
  uint64_t join_namespaces = 0;           // exec only: CLONE_NEW* flags for setns
  int stdin_r = -1, stdout_w = -1, stderr_w = -1, status_w = -1, start_r = -1;
  int helper_w = -1;                      // exec only: where the helper reports (HelperReport)
  int last_cap = 0;                       // the kernel's highest capability number
};

// What the exec helper tells the agent: the child's pid (in the agent's PID namespace), or the
// step that failed and its errno.
struct HelperReport {
  int32_t pid;
  int32_t error;
  char step[56];
};
static_assert(sizeof(HelperReport) <= 64, "written atomically to a pipe");

Plan make_plan(const ProcessSpec& process) {
  Plan plan;
  plan.process = &process;
  plan.last_cap = kernel_last_capability();
  for (const auto& a : process.args) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  for (const auto& e : process.env) plan.envp.push_back(const_cast<char*>(e.c_str()));
  plan.envp.push_back(nullptr);
  const std::string& program = process.args[0];
  if (program.find('/') != std::string::npos) {
    plan.candidates.push_back(program);
  } else {
    std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const auto& e : process.env) {
      if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
    }
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find(':', start);
      if (end == std::string::npos) end = path.size();
      std::string dir = path.substr(start, end - start);
      plan.candidates.push_back((dir.empty() ? "." : dir) + "/" + program);
      start = end + 1;
    }
  }
  return plan;
}

// ---- Child side: runs in the new process only, between clone3 and execve. ----

[[noreturn]] void child_fail(const Plan& plan, const char* step, int err) {
  ChildReport report{};
  report.tag = 'E';
  std::strncpy(report.step, step, sizeof report.step - 1);
  report.error = err;
  ssize_t ignored = ::write(plan.status_w, &report, sizeof report);
  (void)ignored;
  ::_exit(127);
}

void make_node(const char* path, unsigned major, unsigned minor) {
  ::mknod(path, S_IFCHR | 0666, makedev(major, minor));
  ::chmod(path, 0666);  // mknod applies the umask
}

// Called in the child after the new root is in place.
void setup_root_mounts(const Plan& plan) {
  ::mkdir("/proc", 0555);
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    child_fail(plan, "mount /proc", errno);
  }
  struct stat st {};
  if (::stat("/dev", &st) == 0 && S_ISDIR(st.st_mode)) {
    // A tmpfs with only harmless nodes: a devtmpfs would show the container every device.
    if (::mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536") != 0) {
      child_fail(plan, "mount /dev", errno);
    }
    make_node("/dev/null", 1, 3);
    make_node("/dev/zero", 1, 5);
    make_node("/dev/full", 1, 7);
    make_node("/dev/random", 1, 8);
    make_node("/dev/urandom", 1, 9);
    make_node("/dev/tty", 5, 0);
    // Conveniences only: a failure leaves a usable /dev.
    const char* links[][2] = {{"/proc/self/fd", "/dev/fd"},
                              {"/proc/self/fd/0", "/dev/stdin"},
                              {"/proc/self/fd/1", "/dev/stdout"},
                              {"/proc/self/fd/2", "/dev/stderr"}};
    for (const auto& link : links) {
      if (::symlink(link[0], link[1]) != 0) continue;
    }
  }
}

void enter_root(const Plan& plan) {
  const ContainerSetup& setup = *plan.setup;
  // Nothing mounted from here on may propagate back to the agent's namespace. EINVAL means the
  // agent's root is not a mount point (it was chrooted into a directory, as host-mode --boot tests
  // do); then the mount holding it cannot be named from here, and we rely on it being private,
  // which it is in a guest (nothing makes initramfs mounts shared) and under `unshare
  // --propagation private`.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 && errno != EINVAL) {
    child_fail(plan, "make / private", errno);
  }
  if (::mount(setup.rootfs.c_str(), setup.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    child_fail(plan, "bind-mount the rootfs", errno);
  }
  if (::chdir(setup.rootfs.c_str()) != 0) child_fail(plan, "chdir to the rootfs", errno);
  bool pivoted = false;
  if (!setup.no_pivot) {
    // pivot_root(".", "."): the old root ends up stacked on the new one and is detached next;
    // no directory for it is needed in the (possibly read-only) rootfs.
    if (::syscall(SYS_pivot_root, ".", ".") == 0) {
      if (::umount2(".", MNT_DETACH) != 0) child_fail(plan, "detach the old root", errno);
      pivoted = true;
    } else if (errno != EINVAL) {
      child_fail(plan, "pivot_root", errno);
    }
    // EINVAL: the agent's root is the initramfs (rootfs cannot be pivoted); move instead.
  }
  if (!pivoted) {
    if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) child_fail(plan, "move the rootfs to /", errno);
    if (::chroot(".") != 0) child_fail(plan, "chroot", errno);
  }
  if (::chdir("/") != 0) child_fail(plan, "chdir /", errno);
  setup_root_mounts(plan);
  const std::string& hostname = setup.hostname;
  if (::sethostname(hostname.c_str(), hostname.size()) != 0) child_fail(plan, "sethostname", errno);
}

// Closes every fd from 3 up except those in `keep` (-1 entries ignored). Async-signal-safe: runs
// between clone3 and execve.
template <size_t N>
void close_all_but(int (&keep)[N]) {
  std::sort(keep, keep + N);
  unsigned next = 3;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned>(fd) < next) continue;
    if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0u);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::syscall(SYS_close_range, next, ~0u, 0u);
}

// The child inherited every fd of its parent (for a container's first process: the agent's
// channel, other containers' pipes): close all but the few it still needs, so it holds no other
// process's pipe end open while it waits.
void close_inherited_fds(const Plan& plan) {
  int keep[3] = {plan.status_w, plan.start_r, -1};
  close_all_but(keep);
}

[[noreturn]] void child_main(const Plan& plan) {
  // The agent blocks SIGCHLD (for its signalfd) and ignores SIGPIPE; both survive execve.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  ::setsid();
  // Not dumpable until execve (which resets it): nothing in the container may ptrace it or take
  // its fds with pidfd_getfd while it runs agent code.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  if (::dup2(plan.stdin_r, 0) < 0 || ::dup2(plan.stdout_w, 1) < 0 || ::dup2(plan.stderr_w, 2) < 0) {
    child_fail(plan, "dup2 stdio", errno);
  }
  close_inherited_fds(plan);

  // An exec's child is already in the container's namespaces: its helper joined them.
  if (plan.setup != nullptr) enter_root(plan);

  const ProcessSpec& p = *plan.process;
  const Privileges& priv = p.privileges;
  // cwd is resolved in the container's root: ".." at "/" stays at "/", so it cannot leave it.
  if (::chdir(p.cwd.c_str()) != 0) child_fail(plan, "chdir to cwd", errno);

  // Privileges, in the order that lets each step still do what it needs (runc's order):
  // rlimits while CAP_SYS_RESOURCE may still raise a hard limit; without no_new_privs the
  // seccomp filter needs CAP_SYS_ADMIN, so then it goes in now (and must allow the rest of this
  // setup, as with runc); bounding set; uid/gid with the permitted set kept across; capset and
  // ambient; no_new_privs. With no_new_privs the filter goes in last, just before execve.
  const char* rlimit_step = "setrlimit";
  if (int err = apply_rlimits(priv, &rlimit_step)) child_fail(plan, rlimit_step, err);
  if (!priv.no_new_privileges && !priv.seccomp.empty()) {
    if (int err = load_seccomp(priv.seccomp)) child_fail(plan, "seccomp", err);
  }
  if (int err = drop_bounding_set(priv, plan.last_cap)) child_fail(plan, "drop the bounding set", err);
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) child_fail(plan, "PR_SET_KEEPCAPS", errno);
  if (::setgroups(p.additional_gids.size(), p.additional_gids.data()) != 0) child_fail(plan, "setgroups", errno);
  if (::setresgid(p.gid, p.gid, p.gid) != 0) child_fail(plan, "setgid", errno);
  if (::setresuid(p.uid, p.uid, p.uid) != 0) child_fail(plan, "setuid", errno);
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) child_fail(plan, "PR_SET_KEEPCAPS", errno);
  if (int err = set_capabilities(priv, plan.last_cap)) child_fail(plan, "capset", err);
  if (priv.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(plan, "no_new_privs", errno);

  if (plan.start_r >= 0) {
    ChildReport ready{};
    ready.tag = 'R';
    if (::write(plan.status_w, &ready, sizeof ready) != static_cast<ssize_t>(sizeof ready)) ::_exit(127);
    char go = 0;
    ssize_t n;
    do {
      n = ::read(plan.start_r, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(127);  // the agent destroyed the container before starting it
  }

  // Every fd except stdio and the status pipe (close-on-exec already) must not reach the program.
  ::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
  if (priv.no_new_privileges && !priv.seccomp.empty()) {
    if (int err = load_seccomp(priv.seccomp)) child_fail(plan, "seccomp", err);
  }

  int err = ENOENT;
  for (const auto& candidate : plan.candidates) {
    ::execve(candidate.c_str(), plan.argv.data(), plan.envp.data());
    // Like execvp: remember a permission problem, keep looking after "not found".
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
  }
  child_fail(plan, "execve", err);
}

// ---- Parent side. ----

void make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno(errno, "pipe2");
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// The pipes of one child; the agent's ends go to `out`, the child's stay here until it exists.
struct ChildPipes {
  UniqueFd stdin_r, stdout_w, stderr_w, status_w, start_r;
};

ChildPipes make_child_pipes(Plan& plan, Spawned& out, bool with_start) {
  ChildPipes c;
  make_pipe(c.stdin_r, out.stdin_w);
  make_pipe(out.stdout_r, c.stdout_w);
  make_pipe(out.stderr_r, c.stderr_w);
  make_pipe(out.status_r, c.status_w);
  if (with_start) make_pipe(c.start_r, out.start_w);
  plan.stdin_r = c.stdin_r.get();
  plan.stdout_w = c.stdout_w.get();
  plan.stderr_w = c.stderr_w.get();
  plan.status_w = c.status_w.get();
  plan.start_r = c.start_r.get();
  return c;
}

void finish(Spawned& out) {
  set_nonblocking(out.stdin_w.get());
  set_nonblocking(out.stdout_r.get());
  set_nonblocking(out.stderr_r.get());
  set_nonblocking(out.status_r.get());
}

long clone_process(uint64_t flags, int* pidfd) {
  CloneArgs args{};
  args.flags = flags | (pidfd != nullptr ? kPidfdFlag : 0);
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  // With CLONE_PARENT the kernel takes the exit signal from the caller; clone3 wants 0 then.
  args.exit_signal = (flags & CLONE_PARENT) != 0 ? 0 : SIGCHLD;
  return ::syscall(SYS_clone3, &args, sizeof args);
}

// ---- The exec helper: a child of the agent that never enters the container's PID namespace
// view, so nothing inside the container can see it, while it still holds agent state. ----

[[noreturn]] void helper_fail(const Plan& plan, const char* step, int err) {
  HelperReport report{};
  report.pid = -1;
  report.error = err;
  std::strncpy(report.step, step, sizeof report.step - 1);
  ssize_t ignored = ::write(plan.helper_w, &report, sizeof report);
  (void)ignored;
  ::_exit(127);
}

[[noreturn]] void helper_main(Plan& plan) {
  // Not dumpable, and none of the agent's fds beyond this point: the real child is born from
  // this state, and it is the first thing of ours a process in the container can see.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  int keep[] = {plan.stdin_r, plan.stdout_w, plan.stderr_w, plan.status_w, plan.helper_w, plan.container_pidfd};
  close_all_but(keep);
  // Every namespace of the container at once; CLONE_NEWPID only changes where our *children*
  // go: this helper stays in the agent's PID namespace, invisible from inside.
  if (::setns(plan.container_pidfd, static_cast<int>(plan.join_namespaces)) != 0) {
    helper_fail(plan, "setns into the container", errno);
  }
  ::close(plan.container_pidfd);
  plan.container_pidfd = -1;
  // CLONE_PARENT: the child is the agent's, which reaps it and gets its SIGCHLD like any other.
  long pid = clone_process(CLONE_PARENT, nullptr);
  if (pid == 0) {
    ::close(plan.helper_w);
    plan.helper_w = -1;
    child_main(plan);
  }
  if (pid < 0) helper_fail(plan, "clone3 in the container", errno);
  HelperReport report{};
  report.pid = static_cast<int32_t>(pid);
  ssize_t ignored = ::write(plan.helper_w, &report, sizeof report);
  (void)ignored;
  ::_exit(0);
}

// The namespaces an exec joins: all the container has that this kernel knows of. The user
// namespace is not among them: containers share the agent's, and setns to one's own is EINVAL.
uint64_t container_namespaces() {
  uint64_t flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) == 0) flags |= CLONE_NEWNET;
  if (::stat("/proc/self/ns/cgroup", &st) == 0) flags |= CLONE_NEWCGROUP;
  return flags;
}

}  // namespace

Spawned spawn_container_init(const ProcessSpec& process, const ContainerSetup& setup) {
  Plan plan = make_plan(process);
  plan.setup = &setup;
  Spawned out;
  ChildPipes child = make_child_pipes(plan, out, true);
  // The child is PID 1 of a new PID namespace that holds nothing else yet: no process can see
  // it before it has closed the agent's fds (close_inherited_fds) and executed.
  int pidfd = -1;
  long pid = clone_process(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC, &pidfd);
  if (pid == 0) child_main(plan);
  if (pid < 0) fail_errno(errno, "clone3");
  out.pid = static_cast<pid_t>(pid);
  out.pidfd.reset(pidfd);
  finish(out);
  return out;  // the child's ends close here, so EOFs reach the agent
}

Spawned spawn_exec(const ProcessSpec& process, int container_pidfd) {
  Plan plan = make_plan(process);
  plan.container_pidfd = container_pidfd;
  plan.join_namespaces = container_namespaces();
  Spawned out;
  ChildPipes child = make_child_pipes(plan, out, false);
  UniqueFd helper_r, helper_w;
  make_pipe(helper_r, helper_w);
  plan.helper_w = helper_w.get();
  long helper = clone_process(0, nullptr);
  if (helper == 0) helper_main(plan);
  int clone_errno = errno;
  helper_w.reset();
  if (helper < 0) fail_errno(clone_errno, "clone3 (exec helper)");
  // The helper only joins namespaces and forks: waiting for it here is short, and no other
  // event is handled meanwhile (so reap_children cannot take its exit status).
  HelperReport report{};
  ssize_t n;
  do {
    n = ::read(helper_r.get(), &report, sizeof report);
  } while (n < 0 && errno == EINTR);
  int read_errno = errno;
  while (::waitpid(static_cast<pid_t>(helper), nullptr, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof report)) {
    fail_errno(n < 0 ? read_errno : ECHILD, "the exec helper ended without a report");
  }
  if (report.pid <= 0) {
    report.step[sizeof report.step - 1] = '\0';
    fail_errno(report.error, report.step);
  }
  out.pid = report.pid;
  // Our child (CLONE_PARENT) and not reaped yet: the pid cannot name another process.
  out.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, report.pid, 0)));
  if (!out.pidfd.valid()) {
    int err = errno;
    ::kill(report.pid, SIGKILL);
    fail_errno(err, "pidfd_open of the exec");
  }
  finish(out);
  return out;
}

}  // namespace nodevisor::agent
