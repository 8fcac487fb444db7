/** The netns bench runs and returns plausible numbers (a smoke test; timings are never asserted). */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { benchNetns } from '../../src/bench/netns.js';
import { needs, skipUnless } from '../helpers/needs.js';

describe('benchNetns (root)', skipUnless('netns bench smoke test (creates namespaces)', needs.root), () => {
  it('measures create+delete and enterNetNs, and leaves no namespace behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodevisor-bench-'));
    let result;
    try {
      result = await benchNetns({ cycles: 5, enters: 50, dir });
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(result.createDelete.cycles).toBe(5);
    expect(result.createDelete.perSecond).toBeGreaterThan(0);
    expect(result.enterNetNs.iterations).toBe(50);
    expect(result.enterNetNs.medianUs).toBeGreaterThan(0);
    expect(result.enterNetNs.p99Us).toBeGreaterThanOrEqual(result.enterNetNs.medianUs);
    expect(result.enterNetNs.maxUs).toBeGreaterThanOrEqual(result.enterNetNs.p99Us);
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });
});
