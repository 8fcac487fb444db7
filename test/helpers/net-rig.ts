/**
 * A network namespace as a CNI plugin leaves it for a sandbox: `eth0` with the VM's address and
 * a random locally administered MAC, its veth peer in the host netns with the host's address
 * (10.x.y.1/24 and .2/24). Shared by the kvm networking tests; root and iproute2 needed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { basename } from 'node:path';

import { createNetNs, deleteNetNs } from '../../src/netns/netns.js';

export interface NetRig {
  netns: string;
  hostVeth: string;
  hostIp: string;
  vmIp: string;
  vmMac: string;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Makes the rig; `vmAddress: false` leaves eth0 without an address. */
export async function makeNetRig(prefix: string, options: { vmAddress?: boolean } = {}): Promise<NetRig> {
  const netns = await createNetNs({ name: `${prefix}-${randomBytes(6).toString('hex')}` });
  const name = basename(netns);
  const hostVeth = `nvr${randomBytes(4).toString('hex')}`;
  const net = `10.${randomInt(100, 250)}.${randomInt(0, 255)}`;
  const vmMac = `02:${[...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  try {
    sh('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    sh('ip', ['addr', 'add', `${net}.1/24`, 'dev', hostVeth]);
    sh('ip', ['link', 'set', hostVeth, 'up']);
    sh('ip', ['-n', name, 'link', 'set', 'eth0', 'address', vmMac]);
    if (options.vmAddress ?? true) sh('ip', ['-n', name, 'addr', 'add', `${net}.2/24`, 'dev', 'eth0']);
    sh('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await dropNetRig({ netns, hostVeth, hostIp: '', vmIp: '', vmMac });
    throw err;
  }
  return { netns, hostVeth, hostIp: `${net}.1`, vmIp: `${net}.2`, vmMac };
}

export async function dropNetRig(rig: NetRig): Promise<void> {
  try {
    sh('ip', ['link', 'del', rig.hostVeth]);
  } catch {
    // Gone with the netns already.
  }
  await deleteNetNs(rig.netns);
}

/** Taps, ingress qdiscs and eth0's ingress filters in the rig's netns (what wiring makes). */
export function netLeftovers(netns: string): { taps: string[]; qdiscs: string[]; filters: string } {
  const name = basename(netns);
  return {
    taps: sh('ip', ['-n', name, '-o', 'link', 'show']).split('\n').filter((l) => l.includes('nvtap')),
    qdiscs: sh('tc', ['-n', name, 'qdisc', 'show']).split('\n').filter((l) => l.includes('ingress')),
    filters: sh('tc', ['-n', name, 'filter', 'show', 'dev', 'eth0', 'ingress']).trim(),
  };
}

/** `ping -c 3` from the host, without blocking the event loop (the VM's devices need it). */
export function pingFromHost(ip: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ping', ['-c', '3', '-W', '5', ip], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}
