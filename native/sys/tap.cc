#include "sys/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>

#include <cstring>
#include <optional>
#include <system_error>
#include <thread>

#include "sys/netns.h"

namespace nodevisor::sys {

namespace {

Status check_name(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return Error::check(EINVAL, "", "tap name \"" + name + "\" must be 1 to 15 bytes");
  }
  for (char c : name) {
    if (c == '/' || c == ':' || c <= ' ' || c == 0x7f) {
      return Error::check(EINVAL, "", "tap name \"" + name + "\" has a character an interface name cannot have");
    }
  }
  return Ok{};
}

// The vnet header size and non-blocking mode the net device expects.
Status set_up(int fd, const std::string& what) {
  int hdr = kTapVnetHdrBytes;
  if (::ioctl(fd, TUNSETVNETHDRSZ, &hdr) != 0) {
    return Error::from_errno("ioctl(TUNSETVNETHDRSZ)", "", "cannot set the virtio header size of " + what);
  }
  // No offloads: the kernel hands the tap complete, checksummed frames (offloads may come later).
  if (::ioctl(fd, TUNSETOFFLOAD, 0) != 0) {
    return Error::from_errno("ioctl(TUNSETOFFLOAD)", "", "cannot turn off the offloads of " + what);
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Error::from_errno("fcntl", "", "cannot make " + what + " non-blocking");
  }
  return Ok{};
}

// Runs on the thread open_tap starts: enters the netns (if any), opens, comes back.
Result<UniqueFd> open_here(const std::string& name, const std::string& netns_path) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  std::optional<NetnsSwitch> in_ns;
  if (!netns_path.empty()) {
    auto entered = NetnsSwitch::enter(netns_path);
    if (!entered) return entered.error();
    in_ns.emplace(std::move(entered).value());
  }
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) return Error::from_errno("open", "/dev/net/tun", "cannot open the tun/tap device");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    return Error::from_errno("ioctl(TUNSETIFF)", netns_path, "cannot create or attach tap " + name);
  }
  auto ready = set_up(fd.get(), "tap " + name);
  if (!ready) return ready.error();
  if (in_ns) {
    auto back = in_ns->restore();
    if (!back) return back.error();
  }
  return fd;
}

}  // namespace

Result<UniqueFd> open_tap(const std::string& name, const std::string& netns_path) {
  auto ok = check_name(name);
  if (!ok) return ok.error();
  std::optional<Result<UniqueFd>> result;
  try {
    std::thread worker([&] { result.emplace(open_here(name, netns_path)); });
    worker.join();
  } catch (const std::system_error& e) {
    return Error::with_errno(e.code().value(), "pthread_create", netns_path,
                                "cannot start the thread that opens tap " + name);
  }
  return std::move(*result);
}

Status adopt_tap_fd(int fd) {
  ifreq ifr{};
  if (::ioctl(fd, TUNGETIFF, &ifr) != 0) {
    return Error::from_errno("ioctl(TUNGETIFF)", "", "the fd given as a tap is not a tun/tap fd");
  }
  const int want = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if ((ifr.ifr_flags & want) != want) {
    return Error::check(EINVAL, "", "the tap fd must be opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR");
  }
  return set_up(fd, "the tap fd");
}

}  // namespace nodevisor::sys
