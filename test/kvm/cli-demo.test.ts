/**
 * `nodevisor demo` (what `npm run demo` runs) as a child process: the probe boots, its console
 * and start time are printed, the agent answers a ping, a hot-plugged temporary disk is read
 * back by the guest with the host's checksum, and nothing is left in the temporary directory.
 */
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';

import { PROBE_BANNER } from '../../src/guest/probe.js';
import { runCli } from '../helpers/cli.js';
import { needs, skipUnless } from '../helpers/needs.js';

const demoDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith('nodevisor-demo-'));

describe('nodevisor demo', skipUnless('nodevisor demo (boots the probe guest)', needs.kvm), () => {
  for (const entry of [[], ['--pvh']]) {
    it(`boots the probe${entry.length ? ' at its PVH entry' : ''}, pings the agent, hot-plugs a disk and checks it, and cleans up`, async () => {
      const before = demoDirs();
      const run = await runCli(['demo', ...entry]);
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(run.stdout).toContain(entry.length ? '(PVH entry)' : '(CPL-3 user entry)');
      expect(run.stdout).toContain(PROBE_BANNER.trim());
      expect(run.stdout).toMatch(/create \+ start -> ready \(phase 0x41\): \d+\.\d+ ms/);
      expect(run.stdout).toMatch(/agent ping over virtio-console: nodevisor-probe answered/);
      expect(run.stdout).toMatch(/hot-plugged \S+disk\.img \(256 KiB, serial demo-disk\) into slot 0/);
      const crcs = /CRC-32 (0x[0-9a-f]{8}) \(host: (0x[0-9a-f]{8})\)/.exec(run.stdout);
      expect(crcs?.[1]).toBe(crcs?.[2]);
      expect(run.stdout).toContain('detached slot 0');
      expect(run.stdout.trim().endsWith('stopped the VM')).toBe(true);
      expect(demoDirs()).toEqual(before);
    });
  }
});
