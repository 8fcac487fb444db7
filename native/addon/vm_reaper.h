// The thread that stops VMs nobody will stop any more: a VM handle collected by the garbage
// collector, or still running when its Node environment shuts down. Both are noticed on the
// JS thread (a finalizer, a cleanup hook), where joining a VM's vCPU and device threads must
// not happen: a guest decides how long those take. The JS thread hands the VM over and
// returns; this thread stops it (joins its threads, frees its memory) in the background.
//
// Before the process exits, every VM handed over is stopped: the reaper's static destructor
// (run by exit(), after Node has torn the environments down) finishes the queue and joins.
//
// Threads: `stop_later` from any thread (the JS thread); the work on the reaper's own thread,
// started on first use.
#pragma once

#include <functional>

namespace nodevisor::addon {

// Runs `stop` on the reaper thread, after the stops handed over before it.
void stop_later(std::function<void()> stop);

}  // namespace nodevisor::addon
