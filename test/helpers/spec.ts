/** A minimal valid OCI spec for tests; each test changes a copy. */
import type { Spec } from '../../src/oci/spec.js';

export function minimalSpec(): Spec {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 1000, gid: 1001, additionalGids: [5, 6] },
      args: ['/bin/sh', '-c', 'echo hi'],
      env: ['PATH=/usr/bin:/bin', 'A=b=c'],
      cwd: '/',
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'box',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'network' }] },
  };
}
