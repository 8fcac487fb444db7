/**
 * The start benchmark runs and returns its figures (a smoke test: never a timing assertion).
 * Where QEMU is installed the probe must boot under it (no banner fails the test); only a
 * missing QEMU binary skips the QEMU side.
 */
import { describe, expect, it } from 'vitest';

import { benchVmStart } from '../../src/bench/vm-start.js';
import { needs, skipUnless } from '../helpers/needs.js';

describe('benchVmStart', skipUnless('run the VM start benchmark', needs.kvm), () => {
  it('measures create+start -> ready at both nodevisor entries and without the spare VM, and says why QEMU was left out when it is missing', async () => {
    const result = await benchVmStart({ iterations: 20, qemuIterations: 1, qemuBinary: '/nonexistent/qemu-system-x86_64' });
    expect(result.nodevisor.p50Us).toBeGreaterThan(0);
    expect(result.nodevisor.summaryUs.n).toBe(20);
    expect(result.nodevisorPvh.p50Us).toBeGreaterThan(0);
    expect(result.nodevisorPvh.summaryUs.n).toBe(20);
    expect(result.nodevisorNoSpare, JSON.stringify(result.nodevisorNoSpare)).toHaveProperty('p50Us');
    expect((result.nodevisorNoSpare as { summaryUs: { n: number } }).summaryUs.n).toBe(20);
    expect(result.qemu).toEqual({ skipped: expect.stringContaining('is not installed') });
    expect(result.ratio).toBeUndefined();
  }, 60_000);

  it(
    'boots the probe under QEMU (its banner) and compares each nodevisor entry with it',
    { ...skipUnless('the QEMU side of the start comparison', needs.command('qemu-system-x86_64')), timeout: 180_000 },
    async () => {
      const result = await benchVmStart({ iterations: 5, qemuIterations: 2, qemuTimeoutMs: 60_000 });
      console.log(JSON.stringify(result));
      expect(result.qemu, JSON.stringify(result.qemu)).toHaveProperty('p50Us');
      expect(result.ratio?.p50).toBeGreaterThan(0);
      expect(result.ratio?.p99).toBeGreaterThan(0);
      expect(result.ratioPvh?.p50).toBeGreaterThan(0);
      expect(result.ratioPvh?.p99).toBeGreaterThan(0);
    },
  );
});
