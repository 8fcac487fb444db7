/**
 * virtio figures on the probe guest: `attachDisk` until the guest reads the new disk by its
 * serial (hot-plug latency), an agent ping round trip over virtio-console (latency), and echo
 * throughput through `vm.agent`. Medians and p99 over repeated runs in one VM.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { AgentClient } from '../agent/client.js';
import { PHASE_READY, probeGuestPath } from '../guest/probe.js';
import { Vm } from '../vm/vm.js';
import { summarize, type Summary } from './stats.js';

export interface VirtioBenchOptions {
  attaches?: number;
  pings?: number;
  echoBytes?: number;
}

export interface VirtioBenchResult {
  /** attachDisk() call → the guest's first successful read of the disk, µs. */
  attachToGuestReadUs: Summary;
  /** The attachDisk() call alone (host side), µs. */
  attachCallUs: Summary;
  /** Agent ping over virtio-console, µs. */
  pingRoundTripUs: Summary;
  /** Echo of `echoBytes` (base64 in JSON) there and back, MiB/s of payload. */
  echo: { bytes: number; seconds: number; mibPerSecond: number };
}

const now = (): number => Number(process.hrtime.bigint()) / 1e3;

export async function benchVirtio(options: VirtioBenchOptions = {}): Promise<VirtioBenchResult> {
  const attaches = options.attaches ?? 50;
  const pings = options.pings ?? 200;
  const echoBytes = options.echoBytes ?? 4 << 20;
  const dir = await mkdtemp(join(tmpdir(), 'nodevisor-bench-virtio-'));
  const disk = join(dir, 'disk.img');
  await writeFile(disk, randomBytes(64 * 1024));
  const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, hotplugSlots: 1 });
  try {
    const ready = new Promise<void>((resolve) => vm.on('phase', (p) => p.code === PHASE_READY && resolve()));
    await vm.start();
    await ready;
    const agent = new AgentClient(vm.agent, { timeoutMs: 600_000 });
    await agent.ping();

    const attachTotal: number[] = [];
    const attachCall: number[] = [];
    for (let i = 0; i < attaches; i++) {
      const serial = `bench-${i}`;
      const t0 = now();
      const slot = await vm.attachDisk({ path: disk, serial, readOnly: true });
      const t1 = now();
      await agent.diskChecksum(serial, 0, 512);
      attachTotal.push(now() - t0);
      attachCall.push(t1 - t0);
      await vm.detachDisk(slot);
    }

    const rtt: number[] = [];
    for (let i = 0; i < pings; i++) {
      const t0 = now();
      await agent.ping();
      rtt.push(now() - t0);
    }

    // Echo in chunks of 512 KiB of data (about 700 KiB of base64 per frame).
    const chunk = randomBytes(512 * 1024).toString('base64');
    const rounds = Math.max(1, Math.round(echoBytes / (512 * 1024)));
    const t0 = now();
    for (let i = 0; i < rounds; i++) {
      if ((await agent.echo(chunk)) !== chunk) throw new Error('echo came back different');
    }
    const seconds = (now() - t0) / 1e6;
    const bytes = rounds * 512 * 1024;
    return {
      attachToGuestReadUs: summarize(attachTotal),
      attachCallUs: summarize(attachCall),
      pingRoundTripUs: summarize(rtt),
      echo: { bytes, seconds: Math.round(seconds * 1000) / 1000, mibPerSecond: Math.round((bytes / 2 ** 20 / seconds) * 100) / 100 },
    };
  } finally {
    await vm.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
