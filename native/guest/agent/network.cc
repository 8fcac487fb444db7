#include "network.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent.h"
#include "errors.h"

namespace nodevisor::agent {

namespace net {

namespace {

// Builds one netlink message: header, a fixed struct, then attributes, each 4-byte aligned.
class Message {
 public:
  Message(uint16_t type, uint16_t flags) {
    bytes_.resize(NLMSG_HDRLEN);
    auto* h = header();
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  }
  template <typename T>
  T* body() {
    const size_t at = bytes_.size();
    bytes_.resize(at + NLMSG_ALIGN(sizeof(T)));
    return reinterpret_cast<T*>(bytes_.data() + at);
  }
  void attr(uint16_t type, const void* data, size_t len) {
    const size_t at = bytes_.size();
    bytes_.resize(at + RTA_ALIGN(RTA_LENGTH(len)));
    auto* rta = reinterpret_cast<rtattr*>(bytes_.data() + at);
    rta->rta_type = type;
    rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
  }
  std::vector<uint8_t>& finish() {
    header()->nlmsg_len = static_cast<uint32_t>(bytes_.size());
    return bytes_;
  }

 private:
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(bytes_.data()); }
  std::vector<uint8_t> bytes_;
};

int addr_len(int family) { return family == AF_INET6 ? 16 : 4; }

}  // namespace

Mac parse_mac(const std::string& text, const std::string& field) {
  Mac mac{};
  unsigned b[6];
  char extra;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &extra) != 6 ||
      text.size() != 17) {
    fail("EINVAL", field + " must be a MAC address like 02:00:00:00:00:01");
  }
  for (int i = 0; i < 6; i++) mac[static_cast<size_t>(i)] = static_cast<uint8_t>(b[i]);
  return mac;
}

IpPrefix parse_ip(const std::string& text, const std::string& field) {
  IpPrefix ip;
  if (::inet_pton(AF_INET, text.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET;
    ip.prefix = 32;
  } else if (::inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET6;
    ip.prefix = 128;
  } else {
    fail("EINVAL", field + " must be an IPv4 or IPv6 address (got \"" + text + "\")");
  }
  return ip;
}

IpPrefix parse_cidr(const std::string& text, const std::string& field) {
  if (text == "default") return IpPrefix{AF_INET, {}, 0};
  const auto slash = text.find('/');
  IpPrefix ip = parse_ip(text.substr(0, slash), field);
  if (slash != std::string::npos) {
    const std::string bits = text.substr(slash + 1);
    char* end = nullptr;
    const long n = std::strtol(bits.c_str(), &end, 10);
    if (bits.empty() || *end != 0 || n < 0 || n > (ip.family == AF_INET6 ? 128 : 32)) {
      fail("EINVAL", field + " has a bad prefix length (got \"" + text + "\")");
    }
    ip.prefix = static_cast<int>(n);
  }
  return ip;
}

Netlink::Netlink() {
  fd_.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd_.valid()) fail_errno(errno, "socket(NETLINK_ROUTE)");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) fail_errno(errno, "bind(netlink)");
}

void Netlink::transact(std::vector<uint8_t>& message, const std::string& what) {
  auto* h = reinterpret_cast<nlmsghdr*>(message.data());
  h->nlmsg_seq = ++seq_;
  h->nlmsg_flags |= NLM_F_ACK;
  if (::send(fd_.get(), message.data(), message.size(), 0) < 0) fail_errno(errno, what + ": send(netlink)");
  std::vector<uint8_t> buf(16384);
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, what + ": recv(netlink)");
    }
    int left = static_cast<int>(n);
    for (auto* r = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
      if (r->nlmsg_seq != seq_ || r->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(r));
      if (err->error != 0) fail_errno(-err->error, what);
      return;
    }
  }
}

std::vector<Link> Netlink::links() {
  Message m(RTM_GETLINK, NLM_F_DUMP);
  m.body<ifinfomsg>()->ifi_family = AF_UNSPEC;
  auto& bytes = m.finish();
  reinterpret_cast<nlmsghdr*>(bytes.data())->nlmsg_seq = ++seq_;
  if (::send(fd_.get(), bytes.data(), bytes.size(), 0) < 0) fail_errno(errno, "RTM_GETLINK: send(netlink)");
  std::vector<Link> out;
  std::vector<uint8_t> buf(32768);
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "RTM_GETLINK: recv(netlink)");
    }
    int left = static_cast<int>(n);
    for (auto* r = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
      if (r->nlmsg_seq != seq_) continue;
      if (r->nlmsg_type == NLMSG_DONE) return out;
      if (r->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(r));
        fail_errno(-err->error, "RTM_GETLINK");
      }
      if (r->nlmsg_type != RTM_NEWLINK) continue;
      const auto* info = static_cast<const ifinfomsg*>(NLMSG_DATA(r));
      Link link;
      link.index = info->ifi_index;
      int attr_len = static_cast<int>(IFLA_PAYLOAD(r));
      for (auto* a = IFLA_RTA(info); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len)) {
        if (a->rta_type == IFLA_IFNAME) {
          link.name.assign(static_cast<const char*>(RTA_DATA(a)), strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
        } else if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) {
          Mac mac;
          std::memcpy(mac.data(), RTA_DATA(a), 6);
          link.mac = mac;
        }
      }
      out.push_back(std::move(link));
    }
  }
}

void Netlink::set_link(int index, const std::optional<std::string>& name, std::optional<uint32_t> mtu,
                       std::optional<bool> up) {
  auto change = [&](const std::optional<std::string>& new_name, std::optional<uint32_t> new_mtu, std::optional<bool> state) {
    Message m(RTM_NEWLINK, 0);
    auto* info = m.body<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = index;
    if (state) {
      info->ifi_change = IFF_UP;
      info->ifi_flags = *state ? IFF_UP : 0;
    }
    if (new_name) m.attr(IFLA_IFNAME, new_name->c_str(), new_name->size() + 1);
    if (new_mtu) m.attr(IFLA_MTU, &*new_mtu, sizeof(uint32_t));
    transact(m.finish(), "RTM_NEWLINK (interface " + std::to_string(index) + ")");
  };
  if (name) change(std::nullopt, std::nullopt, false);  // a link is renamed while down
  if (name || mtu) change(name, mtu, std::nullopt);
  if (up) change(std::nullopt, std::nullopt, up);
}

void Netlink::add_address(int index, const IpPrefix& address) {
  Message m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
  auto* ifa = m.body<ifaddrmsg>();
  ifa->ifa_family = static_cast<uint8_t>(address.family);
  ifa->ifa_prefixlen = static_cast<uint8_t>(address.prefix);
  ifa->ifa_index = static_cast<uint32_t>(index);
  const int len = addr_len(address.family);
  m.attr(IFA_LOCAL, address.bytes.data(), static_cast<size_t>(len));
  m.attr(IFA_ADDRESS, address.bytes.data(), static_cast<size_t>(len));
  transact(m.finish(), "RTM_NEWADDR");
}

void Netlink::add_route(const IpPrefix& dest, const std::optional<IpPrefix>& gateway, int index) {
  Message m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  auto* rt = m.body<rtmsg>();
  rt->rtm_family = static_cast<uint8_t>(gateway ? gateway->family : dest.family);
  rt->rtm_dst_len = static_cast<uint8_t>(dest.prefix);
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_type = RTN_UNICAST;
  rt->rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  if (dest.prefix > 0) m.attr(RTA_DST, dest.bytes.data(), static_cast<size_t>(addr_len(dest.family)));
  if (gateway) m.attr(RTA_GATEWAY, gateway->bytes.data(), static_cast<size_t>(addr_len(gateway->family)));
  const uint32_t oif = static_cast<uint32_t>(index);
  m.attr(RTA_OIF, &oif, sizeof oif);
  transact(m.finish(), "RTM_NEWROUTE");
}

void Netlink::add_neighbor(int index, const IpPrefix& address, const Mac& mac) {
  Message m(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
  auto* nd = m.body<ndmsg>();
  nd->ndm_family = static_cast<uint8_t>(address.family);
  nd->ndm_ifindex = index;
  nd->ndm_state = NUD_PERMANENT;
  m.attr(NDA_DST, address.bytes.data(), static_cast<size_t>(addr_len(address.family)));
  m.attr(NDA_LLADDR, mac.data(), mac.size());
  transact(m.finish(), "RTM_NEWNEIGH");
}

}  // namespace net

namespace {

constexpr size_t kMaxEntries = 64;

const std::vector<json::Value>& array_field(const Fields& f, const char* name) {
  static const std::vector<json::Value> none;
  const json::Value* v = f.get(name);
  if (v == nullptr) return none;
  if (!v->is_array()) fail("EINVAL", f.field_name(name) + " must be an array");
  if (v->items().size() > kMaxEntries) fail("EINVAL", f.field_name(name) + " has more than 64 entries");
  return v->items();
}

int index_by_name(const std::vector<net::Link>& links, const std::string& name, const std::string& field) {
  for (const auto& l : links) {
    if (l.name == name) return l.index;
  }
  fail("ENODEV", field + ": no interface named \"" + name + "\" in the guest");
}

}  // namespace

void Agent::handle_network_update(uint64_t id, const Fields& f) {
  net::Netlink nl;
  struct Done {
    std::string mac, name;
    int index;
  };
  std::vector<Done> done;
  const auto& interfaces = array_field(f, "interfaces");
  for (size_t i = 0; i < interfaces.size(); i++) {
    const std::string at = "interfaces[" + std::to_string(i) + "]";
    if (!interfaces[i].is_object()) fail("EINVAL", at + " must be an object");
    Fields iface(interfaces[i], at + ".");
    const std::string mac_text = iface.string("mac");
    const net::Mac mac = net::parse_mac(mac_text, at + ".mac");
    auto name = iface.optional_string("name");
    if (name && (name->empty() || name->size() >= IFNAMSIZ || name->find_first_of("/: \t\n") != std::string::npos)) {
      fail("EINVAL", at + ".name must be an interface name of 1 to 15 bytes");
    }
    auto mtu = iface.optional_integer("mtu", 68, 65535);
    // Addresses are parsed before anything changes, so a bad one leaves the link as it was.
    std::vector<net::IpPrefix> addresses;
    const auto& addrs = array_field(iface, "addresses");
    for (size_t k = 0; k < addrs.size(); k++) {
      const std::string a_at = at + ".addresses[" + std::to_string(k) + "]";
      if (!addrs[k].is_object()) fail("EINVAL", a_at + " must be an object {address, prefixLength}");
      Fields a(addrs[k], a_at + ".");
      net::IpPrefix ip = net::parse_ip(a.string("address"), a_at + ".address");
      ip.prefix = static_cast<int>(a.integer("prefixLength", 0, ip.family == AF_INET6 ? 128 : 32));
      addresses.push_back(ip);
    }
    const bool up = iface.optional_bool("up", true);
    std::optional<int> index;
    std::string current;
    for (const auto& l : nl.links()) {
      if (l.mac && *l.mac == mac) {
        index = l.index;
        current = l.name;
      }
    }
    if (!index) fail("ENODEV", at + ": no interface with MAC " + mac_text + " in the guest");
    const bool rename = name && *name != current;
    nl.set_link(*index, rename ? name : std::nullopt,
                mtu ? std::optional<uint32_t>(static_cast<uint32_t>(*mtu)) : std::nullopt, up);
    for (const auto& ip : addresses) nl.add_address(*index, ip);
    done.push_back({mac_text, rename ? *name : current, *index});
  }

  const auto links = nl.links();
  const auto& routes = array_field(f, "routes");
  for (size_t i = 0; i < routes.size(); i++) {
    const std::string at = "routes[" + std::to_string(i) + "]";
    if (!routes[i].is_object()) fail("EINVAL", at + " must be an object {dest, gateway?, device}");
    Fields r(routes[i], at + ".");
    net::IpPrefix dest = net::parse_cidr(r.string("dest"), at + ".dest");
    std::optional<net::IpPrefix> gateway;
    if (auto g = r.optional_string("gateway")) gateway = net::parse_ip(*g, at + ".gateway");
    if (gateway && dest.prefix == 0 && r.string("dest") == "default") dest.family = gateway->family;
    if (gateway && gateway->family != dest.family) fail("EINVAL", at + ": dest and gateway are of different families");
    nl.add_route(dest, gateway, index_by_name(links, r.string("device"), at + ".device"));
  }

  const auto& neighbors = array_field(f, "neighbors");
  for (size_t i = 0; i < neighbors.size(); i++) {
    const std::string at = "neighbors[" + std::to_string(i) + "]";
    if (!neighbors[i].is_object()) fail("EINVAL", at + " must be an object {address, mac, device}");
    Fields n(neighbors[i], at + ".");
    nl.add_neighbor(index_by_name(links, n.string("device"), at + ".device"), net::parse_ip(n.string("address"), at + ".address"),
                    net::parse_mac(n.string("mac"), at + ".mac"));
  }

  send_ok(id, [&](json::Writer& w) {
    w.key("interfaces").begin_array();
    for (const auto& d : done) {
      w.begin_object().key("mac").string(d.mac).key("name").string(d.name).key("index").number(d.index).end_object();
    }
    w.end_array();
  });
}

}  // namespace nodevisor::agent
