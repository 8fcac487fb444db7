import { describe, expect, it } from 'vitest';

import { mountAt, parseMountInfo, parseMountInfoLine, readMountInfo, unescapeMountField } from '../../src/util/mountinfo.js';

const SAMPLE = [
  '22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw',
  '36 22 0:32 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/my\\040vol rw,relatime shared:7 master:1 - tmpfs tmpfs rw,size=1024k',
  '40 22 0:33 / /mnt/no-optional rw - ext4 /dev/vdb rw',
  '41 22 0:34 / /mnt/no-optional rw - tmpfs none rw',
  'garbage line',
].join('\n');

describe('mountinfo', () => {
  it('decodes octal escapes', () => {
    expect(unescapeMountField('a\\040b\\011c\\012d\\134e')).toBe('a b\tc\nd\\e');
  });

  it('parses any number of optional fields', () => {
    const [proc, vol, noopt] = parseMountInfo(SAMPLE);
    expect(proc).toMatchObject({ mountId: 22, parentId: 1, mountPoint: '/proc', fsType: 'proc', optionalFields: ['shared:12'] });
    expect(vol).toMatchObject({
      mountPoint: '/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/my vol',
      optionalFields: ['shared:7', 'master:1'],
      fsType: 'tmpfs',
      superOptions: ['rw', 'size=1024k'],
    });
    expect(noopt).toMatchObject({ optionalFields: [], fsType: 'ext4', source: '/dev/vdb' });
  });

  it('skips malformed lines', () => {
    expect(parseMountInfoLine('garbage line')).toBeUndefined();
    expect(parseMountInfo(SAMPLE)).toHaveLength(4);
  });

  it('picks the most recent of stacked mounts', () => {
    expect(mountAt(parseMountInfo(SAMPLE), '/mnt/no-optional')?.fsType).toBe('tmpfs');
    expect(mountAt(parseMountInfo(SAMPLE), '/nowhere')).toBeUndefined();
  });

  it('reads this process\'s table, which has a root mount', () => {
    expect(readMountInfo().some((m) => m.mountPoint === '/')).toBe(true);
  });
});
