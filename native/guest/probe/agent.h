// The probe's side of the agent protocol (docs/protocol.md) over its virtio-console: frames
// in, requests served (ping, echo, disk.checksum; everything else ENOTSUP), frames out.
#pragma once

#include "probe.h"

// Finds the virtio devices and brings up the console and every disk slot. 0 when a console
// was found; -1 when there is none (the probe then only serves its serial port).
int agent_init(void);
// Serves whatever arrived; returns nonzero when it did any work.
int agent_poll(void);
