// Network namespaces: create a persistent one bound at a path, delete it, tell whether a
// path is one and which one it is, and move the calling thread into one and back.
//
// Runs on: create/delete/check on any thread (the addon runs them on libuv worker threads);
// create starts one extra, short-lived thread of its own (see netns.cc for why).
// NetnsSwitch changes the namespace of the *calling* thread only: setns(CLONE_NEWNET) is
// per thread, so other threads of the process stay where they are.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "sys/unique_fd.h"
#include "sys/result.h"

namespace nodevisor::sys {

// Where `ip netns` and CNI keep named namespaces.
inline constexpr const char* kDefaultNetnsDir = "/run/netns";
// Prefix of the names create_netns draws when none is given.
inline constexpr const char* kNetnsNamePrefix = "nodevisor-";

// A namespace is identified by the device and inode of its nsfs file (what `ls -iL
// /proc/self/ns/net` shows). nsfs inode numbers are 32-bit, so they survive a JS number.
struct NsIdentity {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  bool operator==(const NsIdentity&) const = default;
};

// Creates a new network namespace and bind-mounts it on `<dir>/<name>` so it outlives every
// thread in it. `dir` must be absolute; it is created (one level, mode 0755) if missing.
// An empty `name` draws `nodevisor-<32 random hex digits>`. On failure nothing is left
// behind: the mount is lazily detached and the file removed. Returns the path.
Result<std::string> create_netns(const std::string& dir, const std::string& name);

// Deletes a namespace made by create_netns (or `ip netns add`): lazy unmount
// (MNT_DETACH, so processes still inside keep it alive), then unlink.
// A missing path is not an error, so cleanup and rollback paths can call it without first
// asking; the result says whether anything was removed. A path that exists but is not a
// network namespace is refused (EINVAL) rather than unlinked: a wrong argument must not
// delete an unrelated file.
Result<bool> delete_netns(const std::string& path);

// {dev, ino} of whatever `path` names (symlinks followed).
Result<NsIdentity> path_identity(const std::string& path);

// {dev, ino} of the calling thread's network namespace (/proc/thread-self/ns/net).
Result<NsIdentity> current_thread_netns_identity();

// Opens `path` and checks that it is a network namespace: its filesystem is nsfs (or
// procfs, as on kernels before 3.19), and NS_GET_NSTYPE says CLONE_NEWNET. A procfs file
// must pass NS_GET_NSTYPE (otherwise /proc/self/status would pass the magic test); an nsfs
// file on a kernel without that ioctl (3.19-4.10) is trusted on its magic.
// Error: EINVAL "not a network namespace: <path>", or the errno of open/fstatfs.
Result<UniqueFd> open_netns(const std::string& path);

// open_netns + the identity of the namespace it names.
Result<NsIdentity> check_netns(const std::string& path);

// The calling thread's stay in another network namespace. `enter` moves the thread in and
// keeps an fd of the namespace it came from; `restore` moves it back. Must be restored on
// the thread that entered (checked). The destructor restores if nobody did, and aborts the
// process if that fails: a thread left silently in a foreign namespace is worse than a crash.
class NetnsSwitch {
 public:
  static Result<NetnsSwitch> enter(const std::string& path);

  NetnsSwitch(NetnsSwitch&& other) noexcept = default;
  NetnsSwitch& operator=(NetnsSwitch&&) = delete;
  NetnsSwitch(const NetnsSwitch&) = delete;
  NetnsSwitch& operator=(const NetnsSwitch&) = delete;
  ~NetnsSwitch();

  // Back to the namespace the thread was in before `enter`. Idempotent.
  Status restore();

 private:
  NetnsSwitch(UniqueFd previous, pid_t tid) : previous_(std::move(previous)), tid_(tid) {}

  UniqueFd previous_;  // invalid once restored or moved from
  pid_t tid_;
};

}  // namespace nodevisor::sys
