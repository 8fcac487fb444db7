/**
 * agentProcess(): the agent's `process` object from a container's OCI config. Absent privilege
 * fields stay absent (the agent then applies runc's capabilities and no_new_privs); present ones
 * pass through with the OCI field names the agent reads (docs/protocol.md).
 */
import { describe, expect, it } from 'vitest';

import { agentProcess } from '../../src/agent/process.js';
import { containerConfig } from '../../src/oci/container-config.js';
import type { Spec } from '../../src/oci/spec.js';
import { minimalSpec } from '../helpers/spec.js';

const config = (spec: Spec) => containerConfig(spec, { bundlePath: '/bundle', containerId: 'c1' });

describe('agentProcess', () => {
  it('carries args, env, cwd and ids, and leaves absent privileges absent', () => {
    const spec = minimalSpec();
    delete spec.process!.noNewPrivileges;
    expect(agentProcess(config(spec))).toEqual({
      args: ['/bin/sh', '-c', 'echo hi'],
      env: ['PATH=/usr/bin:/bin', 'A=b=c'],
      cwd: '/',
      uid: 1000,
      gid: 1001,
      additionalGids: [5, 6],
    });
  });

  it('carries capabilities (the legacy array form as five sets), noNewPrivileges, rlimits and seccomp', () => {
    const spec = minimalSpec();
    spec.process!.capabilities = ['CAP_KILL'];
    spec.process!.noNewPrivileges = false;
    spec.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 20 }];
    const seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] };
    spec.linux!.seccomp = seccomp;
    const p = agentProcess(config(spec));
    const kill = ['CAP_KILL'];
    expect(p.capabilities).toEqual({ bounding: kill, effective: kill, inheritable: kill, permitted: kill, ambient: kill });
    expect(p.noNewPrivileges).toBe(false);
    expect(p.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', soft: 10, hard: 20 }]);
    expect(p.seccomp).toEqual(seccomp);
  });
});
