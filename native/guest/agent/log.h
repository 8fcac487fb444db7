// Diagnostics of the agent on its stderr: the guest's console (the kernel opens /dev/console
// for PID 1), or the test's stderr in host mode. Never the agent channel.
#pragma once

namespace nodevisor::agent {

// printf-style, one line, prefixed with "nodevisor-agent: ". Main loop thread and children
// before exec (it only calls write(2), after formatting into a stack buffer).
void log(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace nodevisor::agent
