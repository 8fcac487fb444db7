/**
 * Sandbox networking figures on the probe guest (issue 15): a netns with a veth pair (one end
 * in the host netns), wired to the VM by connectSandboxNetwork (tap + tc mirred, Kata's
 * tcfilter); then ICMP echo round trips host → VM with `ping` (p50/p99 of the per-reply times;
 * skipped without iputils-ping), UDP echo round trips from Node, and UDP echo throughput with
 * a window of datagrams in flight (the probe echoes port 7).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { basename } from 'node:path';
import { promisify } from 'node:util';

import { AgentClient } from '../agent/client.js';
import { PHASE_READY, probeGuestPath } from '../guest/probe.js';
import { createNetNs, deleteNetNs } from '../netns/netns.js';
import { connectSandboxNetwork } from '../network/connect.js';
import { Vm } from '../vm/vm.js';
import { needKvm, needRoot, type Bench } from './registry.js';
import { summarize, type Summary } from './stats.js';

export interface NetBenchOptions {
  pings?: number;
  udpRoundTrips?: number;
  bulkBytes?: number;
}

export interface NetBenchResult {
  /** `ping` host → VM, per-reply times in µs; or why it was skipped. */
  icmpRoundTripUs: Summary | { skipped: string };
  /** One 64-byte UDP datagram to the probe's echo port and back, from Node, µs. */
  udpRoundTripUs: Summary;
  /** 1400-byte datagrams, 32 in flight, echoed: MiB/s of payload one way, and datagrams lost. */
  udpEcho: { bytes: number; seconds: number; mibPerSecond: number; lost: number };
}

const now = (): number => Number(process.hrtime.bigint()) / 1e3;
const run = promisify(execFile);

function hasPing(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v ping'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Resolves the next datagram on `sock`, or undefined after `ms`. */
function nextMessage(sock: Socket, ms: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      sock.off('message', on);
      resolve(undefined);
    }, ms);
    const on = (msg: Buffer): void => {
      clearTimeout(timer);
      resolve(msg);
    };
    sock.once('message', on);
  });
}

async function udpRoundTrips(sock: Socket, ip: string, count: number): Promise<number[]> {
  const out: number[] = [];
  const payload = randomBytes(64);
  for (let i = 0; i < count; i++) {
    const t0 = now();
    const reply = nextMessage(sock, 2000);
    sock.send(payload, 7, ip);
    if ((await reply) !== undefined) out.push(now() - t0);
  }
  return out;
}

/** Keeps `window` datagrams in flight until `total` bytes were sent; a datagram not back in 1 s is lost. */
async function udpBulk(sock: Socket, ip: string, total: number, window = 32, size = 1400): Promise<NetBenchResult['udpEcho']> {
  const count = Math.max(1, Math.ceil(total / size));
  const payload = randomBytes(size);
  let sent = 0;
  let received = 0;
  let lost = 0;
  const t0 = now();
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const pump = (): void => {
      while (sent < count && sent - received - lost < window) {
        sock.send(payload, 7, ip);
        sent++;
      }
      if (received + lost >= count) {
        sock.off('message', onMessage);
        clearTimeout(timer);
        resolve();
        return;
      }
      clearTimeout(timer);
      // Nothing back for a second: count what is in flight as lost and go on.
      timer = setTimeout(() => {
        lost += sent - received - lost;
        pump();
      }, 1000);
    };
    const onMessage = (): void => {
      received++;
      pump();
    };
    sock.on('message', onMessage);
    pump();
  });
  const seconds = (now() - t0) / 1e6;
  const bytes = received * size;
  return { bytes, seconds: Math.round(seconds * 1000) / 1000, mibPerSecond: Math.round((bytes / 2 ** 20 / seconds) * 100) / 100, lost };
}

export async function benchNet(options: NetBenchOptions = {}): Promise<NetBenchResult> {
  const pings = options.pings ?? 1000;
  const udpCount = options.udpRoundTrips ?? 1000;
  const bulkBytes = options.bulkBytes ?? 32 << 20;
  const netns = await createNetNs({ name: `nvbench-${randomBytes(6).toString('hex')}` });
  const name = basename(netns);
  const hostVeth = `nvb${randomBytes(4).toString('hex')}`;
  const net = `10.${randomInt(100, 250)}.${randomInt(0, 255)}`;
  const vmIp = `${net}.2`;
  const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, hotplugNetSlots: 1 });
  const sock = createSocket('udp4');
  try {
    execFileSync('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    execFileSync('ip', ['addr', 'add', `${net}.1/24`, 'dev', hostVeth]);
    execFileSync('ip', ['link', 'set', hostVeth, 'up']);
    execFileSync('ip', ['-n', name, 'addr', 'add', `${vmIp}/24`, 'dev', 'eth0']);
    execFileSync('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    const ready = new Promise<void>((resolve) => vm.on('phase', (p) => p.code === PHASE_READY && resolve()));
    await vm.start();
    await ready;
    const network = await connectSandboxNetwork(vm, netns);
    try {
      const agent = new AgentClient(vm.agent, { timeoutMs: 60_000 });
      await agent.request('net.config', { ip: vmIp });
      await new Promise<void>((resolve) => sock.bind(0, resolve));
      await udpRoundTrips(sock, vmIp, 10); // ARP and warm-up

      let icmp: NetBenchResult['icmpRoundTripUs'] = { skipped: 'ping is not installed (Debian: iputils-ping)' };
      if (hasPing()) {
        const { stdout } = await run('ping', ['-c', String(pings), '-i', '0.002', '-W', '2', vmIp], { maxBuffer: 64 << 20 });
        const times = [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
        icmp = summarize(times);
      }
      const udp = summarize(await udpRoundTrips(sock, vmIp, udpCount));
      const bulk = await udpBulk(sock, vmIp, bulkBytes);
      return { icmpRoundTripUs: icmp, udpRoundTripUs: udp, udpEcho: bulk };
    } finally {
      await network.disconnect();
    }
  } finally {
    sock.close();
    await vm.stop();
    try {
      execFileSync('ip', ['link', 'del', hostVeth], { stdio: 'ignore' });
    } catch {
      // never made, or gone with the netns
    }
    await deleteNetNs(netns);
  }
}

export const netBench: Bench<NetBenchResult> = {
  name: 'net',
  title: 'host → probe VM over veth + tap + tc mirred: ping and UDP echo round trips, UDP echo throughput',
  async missing() {
    return (await needRoot()) ?? (await needKvm());
  },
  async run(ctx) {
    return benchNet(ctx.quick ? { pings: 100, udpRoundTrips: 100, bulkBytes: 2 << 20 } : {});
  },
  format(r) {
    const f = (s: Summary) => `p50 ${s.median} µs, p99 ${s.p99} µs (n=${s.n})`;
    return [
      `   ping host → VM:        ${'skipped' in r.icmpRoundTripUs ? `skipped (${r.icmpRoundTripUs.skipped})` : f(r.icmpRoundTripUs)}`,
      `   UDP echo round trip:   ${f(r.udpRoundTripUs)}`,
      `   UDP echo, 32 in flight: ${r.udpEcho.mibPerSecond} MiB/s each way (${r.udpEcho.bytes} bytes in ${r.udpEcho.seconds} s, ${r.udpEcho.lost} lost)`,
    ].join('\n');
  },
};
