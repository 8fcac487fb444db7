// What the agent does as PID 1 of a guest, before it serves: the kernel hands it an initramfs
// with nothing mounted. Main thread, before the main loop starts.
#pragma once

namespace nodevisor::agent {

// Mounts proc, sysfs, devtmpfs and /run; makes sure fds 0-2 are open; loads the modules listed
// in /lib/modules/nodevisor.list. Problems are logged, not fatal: the host learns what is missing
// from the requests that fail.
void boot_as_pid1();

// Makes sure fds 0, 1 and 2 are open (on /dev/null when nothing else is), so pipes created later
// never get those numbers and dup2 onto stdio in a child cannot clobber its own pipe ends.
void ensure_stdio_open();

// Loads each module path listed (one per line, '#' comments) with finit_module, in order.
void load_modules(const char* list_path);

// Powers the VM off (PID 1 must never exit: the kernel would panic).
[[noreturn]] void power_off();

}  // namespace nodevisor::agent
