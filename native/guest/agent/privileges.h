// What a container process may do: the OCI process's capability sets, noNewPrivileges, rlimits
// and seccomp profile, as the `process` object of container.create and exec carries them
// (docs/protocol.md). The main loop thread parses them (parse_privileges, which throws
// AgentError naming the field); the child applies them between clone3 and execve with the
// apply_* functions, which only make system calls and return an errno (0 on success).
//
// When the host sends no capabilities the process gets runc's defaults (`runc spec`:
// CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE in the bounding, effective and permitted
// sets); when it sends no noNewPrivileges, it is true.
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nodevisor::agent {

class Fields;

struct Capabilities {
  uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
};

struct Rlimit {
  int resource;
  rlimit limit;
  std::string step;  // "setrlimit RLIMIT_...", the failing step the child reports
};

struct Privileges {
  Capabilities caps;
  bool no_new_privileges = true;
  std::vector<Rlimit> rlimits;
  std::vector<sock_filter> seccomp;  // a compiled filter (seccomp.h); empty: none
};

// The capability number of a name like "CAP_SYS_ADMIN", or -1.
int capability_number(std::string_view name);

// Reads capabilities, noNewPrivileges, rlimits and seccomp of a `process` object.
Privileges parse_privileges(const Fields& process);

// ---- Child side (after clone3, before execve): each returns 0 or an errno. ----

// setrlimit for each entry. Done first, while the process may still raise hard limits. On
// failure `*failed_step` names the entry.
int apply_rlimits(const Privileges& p, const char** failed_step);
// Drops every capability outside the bounding set, up to the kernel's last (`last_cap`).
int drop_bounding_set(const Privileges& p, int last_cap);
// capset of effective, permitted and inheritable, then the ambient set. Call after setuid, with
// PR_SET_KEEPCAPS set across it so the permitted set survives a change away from uid 0.
int set_capabilities(const Privileges& p, int last_cap);
// The kernel's highest capability number (/proc/sys/kernel/cap_last_cap), read by the parent.
int kernel_last_capability();

}  // namespace nodevisor::agent
