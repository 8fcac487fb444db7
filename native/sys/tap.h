// Tap devices for virtio-net: opens (creating it when missing) a tap interface inside a given
// network namespace and returns its fd, set up the way the net device passes frames through:
// IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with a 12-byte virtio_net_hdr (the virtio 1.x layout),
// non-blocking, close-on-exec.
//
// A tap belongs to the namespace of the thread that creates it (TUNSETIFF), and setns is per
// thread: open_tap does its work on a short-lived thread of its own that enters the netns, so
// the caller's thread (a libuv worker) never changes namespace.
//
// A tap open_tap creates is not persistent: it disappears when the last fd closes (the VM
// stops or the slot is emptied), so a crash leaves no tap behind. A tap that already exists
// (made by `ip tuntap add`, as Kata does) is attached to instead.
//
// Runs on: any thread (starts and joins one thread of its own).
#pragma once

#include <string>

#include "sys/result.h"
#include "sys/unique_fd.h"

namespace nodevisor::sys {

// Size of the virtio_net_hdr the tap reads and writes in front of every frame.
inline constexpr int kTapVnetHdrBytes = 12;

// `name`: 1..15 bytes, no '/', ':' or whitespace. `netns_path`: a network namespace file
// (/run/netns/x, /proc/<pid>/ns/net) or empty for the caller's namespace.
Result<UniqueFd> open_tap(const std::string& name, const std::string& netns_path);

// Checks that `fd` is a tap opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR (a tap fd the
// caller brings) and sets it up like open_tap does (vnet header size, non-blocking).
Status adopt_tap_fd(int fd);

}  // namespace nodevisor::sys
