// Probe variants that end the VM on purpose, so the VMM's exit paths are tested with a real
// guest: the agent request `probe.fault` with `kind` "triple-fault", "i8042-reset" or
// "internal-error" (docs/protocol.md's probe requests; test/kvm/vm-probe-faults.test.ts).
#pragma once

#include "probe.h"

// Does what `kind` in the request payload[0..n) names and does not return; returns only when
// the kind is missing or unknown (the caller answers EINVAL).
void probe_fault(const char* payload, u32 n);
