// An OCI seccomp profile (linux.seccomp: defaultAction, defaultErrnoRet, architectures,
// syscalls[{names, action, errnoRet, args[{index, value, valueTwo, op}]}]) compiled into a
// classic BPF program for SECCOMP_SET_MODE_FILTER, without libseccomp (not available where the
// agent is built). Main loop thread compiles; the child loads.
//
// The program first checks the architecture: anything but x86-64 (an int 0x80 i386 call, an
// x32 call) gets ENOSYS, so no rule can be sidestepped by another system call table. Then each
// rule, in profile order: the first whose syscall number and argument conditions all match
// decides; otherwise defaultAction. Names this architecture does not have are skipped, as
// runc does (profiles list names of every architecture). SCMP_ACT_NOTIFY is refused (EINVAL).
#pragma once

#include <linux/filter.h>

#include <string_view>
#include <vector>

namespace nodevisor::agent {

class Fields;

// Throws AgentError (EINVAL naming the field) for a profile it cannot compile.
std::vector<sock_filter> compile_seccomp(const Fields& profile);

// The number of an x86-64 system call name, or -1.
int syscall_number(std::string_view name);

// Child side: installs the filter; returns 0 or an errno.
int load_seccomp(const std::vector<sock_filter>& program);

}  // namespace nodevisor::agent
