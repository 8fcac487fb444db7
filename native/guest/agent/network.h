// network.update (docs/protocol.md): the guest side of sandbox networking. The host
// names each interface by the MAC it gave the VM's virtio-net device; the agent finds it,
// renames it to the netns interface's name (so routes can name it), sets MTU, addresses and
// link up, then adds routes and permanent ARP/NDP neighbours. All through rtnetlink.
//
// Runs on: the agent's main loop thread; every netlink call is a request and its ack.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sys/unique_fd.h"

namespace nodevisor::agent::net {

using Mac = std::array<uint8_t, 6>;

struct Link {
  int index = 0;
  std::string name;
  std::optional<Mac> mac;
};

// An address in either family, with its prefix length.
struct IpPrefix {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  int prefix = 0;
};

// Parsers; throw AgentError (EINVAL) naming `field`.
Mac parse_mac(const std::string& text, const std::string& field);
IpPrefix parse_ip(const std::string& text, const std::string& field);  // an address, prefix = full
IpPrefix parse_cidr(const std::string& text, const std::string& field);  // "a/n" or "default"

// One rtnetlink socket; each call throws AgentError with the kernel's errno.
class Netlink {
 public:
  Netlink();
  std::vector<Link> links();
  // Only the fields given change. A rename takes the link down first (the kernel wants that).
  void set_link(int index, const std::optional<std::string>& name, std::optional<uint32_t> mtu,
                std::optional<bool> up);
  void add_address(int index, const IpPrefix& address);
  // `dest.prefix == 0` with no bytes: the default route.
  void add_route(const IpPrefix& dest, const std::optional<IpPrefix>& gateway, int index);
  void add_neighbor(int index, const IpPrefix& address, const Mac& mac);

 private:
  void transact(std::vector<uint8_t>& message, const std::string& what);
  nodevisor::UniqueFd fd_;
  uint32_t seq_ = 0;
};

}  // namespace nodevisor::agent::net
