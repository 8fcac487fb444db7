/** The start benchmark runs and returns its figures (a smoke test: never a timing assertion). */
import { describe, expect, it } from 'vitest';

import { benchVmStart } from '../../src/bench/vm-start.js';
import { needs, skipUnless } from '../helpers/needs.js';

describe('benchVmStart', skipUnless('run the VM start benchmark', needs.kvm), () => {
  it('measures nodevisor create+start -> ready and reports QEMU (or why it was skipped)', async () => {
    const result = await benchVmStart({ iterations: 20, qemuIterations: 1, qemuTimeoutMs: 3000 });
    console.log(JSON.stringify(result));
    expect(result.nodevisor.p50Us).toBeGreaterThan(0);
    expect(result.nodevisor.summaryUs.n).toBe(20);
    expect('skipped' in result.qemu || result.ratio !== undefined).toBe(true);
  }, 60_000);
});
