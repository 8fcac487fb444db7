#include "privileges.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "errors.h"
#include "request.h"
#include "seccomp.h"

namespace nodevisor::agent {

namespace {

// Capability names of <linux/capability.h>, by number.
constexpr std::string_view kCapabilityNames[] = {
    "CAP_CHOWN",          "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",         "CAP_KILL",           "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",        "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",      "CAP_NET_RAW",        "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",     "CAP_SYS_RAWIO",      "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",      "CAP_SYS_ADMIN",      "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",   "CAP_SYS_TIME",       "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",          "CAP_AUDIT_WRITE",    "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",   "CAP_MAC_ADMIN",      "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",  "CAP_AUDIT_READ",     "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};
static_assert(std::size(kCapabilityNames) == CAP_CHECKPOINT_RESTORE + 1, "one name per capability");

constexpr uint64_t bit(int cap) { return uint64_t{1} << cap; }

// `runc spec`'s process.capabilities.
constexpr uint64_t kDefaultCaps = bit(CAP_AUDIT_WRITE) | bit(CAP_KILL) | bit(CAP_NET_BIND_SERVICE);

struct RlimitName {
  std::string_view name;
  int resource;
};

constexpr RlimitName kRlimits[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

constexpr size_t kMaxRlimits = 64;

uint64_t capability_set(const Fields& caps, const char* name) {
  uint64_t set = 0;
  for (const auto& cap : caps.string_array(name, 64, false)) {
    int n = capability_number(cap);
    if (n < 0) fail("EINVAL", caps.field_name(name) + ": unknown capability \"" + cap.substr(0, 64) + "\"");
    set |= bit(n);
  }
  return set;
}

}  // namespace

int capability_number(std::string_view name) {
  for (size_t i = 0; i < std::size(kCapabilityNames); ++i) {
    if (kCapabilityNames[i] == name) return static_cast<int>(i);
  }
  return -1;
}

Privileges parse_privileges(const Fields& process) {
  Privileges p;
  const json::Value* caps = process.get("capabilities");
  if (caps == nullptr) {
    p.caps.bounding = p.caps.effective = p.caps.permitted = kDefaultCaps;
  } else {
    if (!caps->is_object()) fail("EINVAL", process.field_name("capabilities") + " must be an object of capability lists");
    Fields c(*caps, process.field_name("capabilities."));
    p.caps.bounding = capability_set(c, "bounding");
    p.caps.effective = capability_set(c, "effective");
    p.caps.inheritable = capability_set(c, "inheritable");
    p.caps.permitted = capability_set(c, "permitted");
    p.caps.ambient = capability_set(c, "ambient");
  }
  p.no_new_privileges = process.optional_bool("noNewPrivileges", true);

  const json::Value* rlimits = process.get("rlimits");
  if (rlimits != nullptr) {
    if (!rlimits->is_array() || rlimits->items().size() > kMaxRlimits) {
      fail("EINVAL", process.field_name("rlimits") + " must be an array of at most 64 {type, soft, hard}");
    }
    for (size_t i = 0; i < rlimits->items().size(); ++i) {
      std::string where = process.field_name("rlimits[" + std::to_string(i) + "]");
      if (!rlimits->items()[i].is_object()) fail("EINVAL", where + " must be an object");
      Fields r(rlimits->items()[i], where + ".");
      std::string type = r.string("type");
      const RlimitName* known = nullptr;
      for (const auto& n : kRlimits) {
        if (n.name == type) known = &n;
      }
      if (known == nullptr) fail("EINVAL", where + ".type: unknown rlimit \"" + type.substr(0, 64) + "\"");
      // JSON integers reach 2^63-1 here; anything at or above RLIM_INFINITY's 2^64-1 would not fit
      // anyway, so "unlimited" is written as -1 (or any negative number).
      auto limit = [&](const char* name) {
        int64_t v = r.integer(name, INT64_MIN, INT64_MAX);
        return v < 0 ? RLIM_INFINITY : static_cast<rlim_t>(v);
      };
      Rlimit entry{known->resource, {limit("soft"), limit("hard")}, "setrlimit " + std::string(known->name)};
      if (entry.limit.rlim_cur > entry.limit.rlim_max) fail("EINVAL", where + ": soft is above hard");
      p.rlimits.push_back(entry);
    }
  }

  const json::Value* seccomp = process.get("seccomp");
  if (seccomp != nullptr) {
    if (!seccomp->is_object()) fail("EINVAL", process.field_name("seccomp") + " must be an object");
    p.seccomp = compile_seccomp(Fields(*seccomp, process.field_name("seccomp.")));
  }
  return p;
}

int kernel_last_capability() {
  int fd = ::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CAP_LAST_CAP;
  char text[16] = {};
  ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  int last = n > 0 ? std::atoi(text) : CAP_LAST_CAP;
  return last > 0 && last < 64 ? last : CAP_LAST_CAP;
}

int apply_rlimits(const Privileges& p, const char** failed_step) {
  for (const auto& r : p.rlimits) {
    if (::setrlimit(static_cast<__rlimit_resource>(r.resource), &r.limit) != 0) {
      *failed_step = r.step.c_str();
      return errno;
    }
  }
  return 0;
}

int drop_bounding_set(const Privileges& p, int last_cap) {
  for (int cap = 0; cap <= last_cap; ++cap) {
    if ((p.caps.bounding & bit(cap)) != 0) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return errno;
  }
  return 0;
}

int set_capabilities(const Privileges& p, int last_cap) {
  uint64_t valid = last_cap >= 63 ? ~uint64_t{0} : bit(last_cap + 1) - 1;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  const Capabilities& c = p.caps;
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>((c.effective & valid) >> (32 * i));
    data[i].permitted = static_cast<uint32_t>((c.permitted & valid) >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>((c.inheritable & valid) >> (32 * i));
  }
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  for (int cap = 0; cap <= last_cap; ++cap) {
    if ((c.ambient & bit(cap)) == 0) continue;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) return errno;
  }
  return 0;
}

}  // namespace nodevisor::agent
