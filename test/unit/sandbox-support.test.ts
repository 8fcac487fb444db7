/** Tier 1: `isolationSupport()` (what `nodevisor info` prints) names what a backend lacks. */
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { isolationSupport } from '../../src/sandbox/support.js';

describe('isolationSupport', () => {
  const path = process.env.PATH;
  afterEach(() => {
    process.env.PATH = path;
  });

  it('lists both backends; vm follows /dev/kvm, and kvm_pvm is said to run no Linux guest', async () => {
    const [vm, namespaces] = await isolationSupport();
    expect(vm!.isolation).toBe('vm');
    expect(namespaces!.isolation).toBe('namespaces');
    if (!existsSync('/dev/kvm')) expect(vm).toMatchObject({ ok: false, detail: expect.stringContaining('/dev/kvm') });
    if (existsSync('/sys/module/kvm_pvm')) expect(vm!.detail).toMatch(/kvm_pvm/);
  });

  it("says 'namespaces' isolates like runc when it can run, and names the missing commands when it cannot", async () => {
    const before = (await isolationSupport())[1]!;
    if (before.ok) expect(before.detail).toMatch(/like runc/);
    process.env.PATH = '/nonexistent';
    const without = (await isolationSupport())[1]!;
    expect(without.ok).toBe(false);
    expect(without.detail).toMatch(/the unshare command/);
    expect(without.detail).toMatch(/the nsenter command/);
    expect(without.detail).toMatch(/the losetup command/);
  });
});
