// The probe's virtio-net driver: polled, answers ARP requests and ICMP echo (ping) for the
// IPv4 address the host gives it with the `net.config` request, and echoes UDP datagrams sent
// to port 7 (for throughput benchmarks). Nothing else: other frames are dropped.
#pragma once

#include "probe.h"

// Room for the reply fields of net.config: `,"mac":"xx:xx:xx:xx:xx:xx","ip":"255.255.255.255"`.
#define NET_REPLY_MAX 80

// The `net.config` request ({ip, mac?, hostile?}): (re)starts the first virtio-net device,
// takes the address, does what `hostile` names to the device (tests: "tx-loop", "tx-outside",
// "rx-avail"), and writes the reply fields (JSON, each preceded by a comma) into `out`.
// Returns 0, or a message saying what is wrong (the request then fails with EINVAL).
const char* net_config(const char* payload, u32 n, char* out, u32 room);
// Serves received frames and reclaims sent ones; nonzero when it did any work.
int net_poll(void);
