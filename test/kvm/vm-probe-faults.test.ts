/**
 * A VM that ends badly ends with its reason: the probe guest, asked over its agent channel
 * (`probe.fault`, native/guest/probe/faults.c), triple-faults, resets the machine through the
 * i8042, or jumps where KVM cannot run it (a KVM internal error). Each time the Vm emits one
 * 'exit' with that reason and a detail, ends in state 'stopped' and leaves no vCPU thread behind.
 */
import { describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { PHASE_READY, probeGuestPath } from '../../src/guest/probe.js';
import { Vm, type VmExit } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { vcpuThreads } from '../helpers/threads.js';

async function probeWithAgent(): Promise<{ vm: Vm; agent: AgentClient; exits: VmExit[]; exited: Promise<VmExit> }> {
  const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64 });
  const exits: VmExit[] = [];
  const exited = new Promise<VmExit>((resolve) =>
    vm.on('exit', (e) => {
      exits.push(e);
      resolve(e);
    }),
  );
  const ready = new Promise<void>((resolve) => vm.on('phase', (p) => p.code === PHASE_READY && resolve()));
  await vm.start();
  await ready;
  const agent = new AgentClient(vm.agent, { timeoutMs: 10_000 });
  await agent.ping();
  return { vm, agent, exits, exited };
}

/** Bounds the wait for the exit (a generous bound on an event, not a timing assertion). */
function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms))]);
}

describe('a guest that ends the VM badly (probe.fault)', skipUnless('probe fault variants in a KVM VM', needs.kvm), () => {
  const cases: [kind: string, reason: string, detail: RegExp][] = [
    ['triple-fault', 'shutdown', /the guest shut down \(triple fault\) at rip=/],
    ['i8042-reset', 'reset', /the guest reset the machine \(i8042\)/],
    ['internal-error', 'internal-error', /KVM internal error, suberror 1 \(instruction emulation failed\) at rip=0xf0000000/],
  ];
  for (const [kind, reason, detail] of cases) {
    it(`${kind}: the VM ends with reason "${reason}" and says why`, async () => {
      const { vm, agent, exits, exited } = await probeWithAgent();
      try {
        // No answer comes: the guest is gone. The request is left to fail when the VM ends.
        agent.request('probe.fault', { kind }).catch(() => undefined);
        const exit = await within(exited, `'exit' after probe.fault ${kind}`);
        expect(exit.reason, JSON.stringify(exit)).toBe(reason);
        expect(exit.detail ?? '').toMatch(detail);
        await vm.stop(); // idempotent after the guest ended the VM
        expect(vm.state).toBe('stopped');
        expect(exits).toHaveLength(1);
        expect(vcpuThreads()).toEqual([]);
      } finally {
        await vm.stop();
      }
    });
  }

  it('an unknown kind is refused and the guest goes on serving', async () => {
    const { vm, agent } = await probeWithAgent();
    try {
      await expect(agent.request('probe.fault', { kind: 'melt' })).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(agent.request('probe.fault', {})).rejects.toMatchObject({ code: 'EINVAL' });
      expect(await agent.ping()).toMatchObject({ agent: 'nodevisor-probe' });
      expect(vm.state).toBe('running');
    } finally {
      await vm.stop();
    }
  });
});
