import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Spec } from '../../src/oci/spec.js';
import { EPHEMERAL_TYPE, isEphemeralStorage, setEphemeralStorageType } from '../../src/rootfs/ephemeral.js';
import { parseMountInfo } from '../../src/util/mountinfo.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { minimalSpec } from '../helpers/spec.js';
import { tempDir } from '../helpers/tmp.js';

describe('isEphemeralStorage (given mount tables)', () => {
  const table = parseMountInfo(
    [
      '36 22 0:32 / /pods/u/volumes/kubernetes.io~empty-dir/mem rw - tmpfs tmpfs rw',
      '37 22 0:33 / /pods/u/volumes/kubernetes.io~empty-dir/disk rw - ext4 /dev/vda rw',
      '38 22 0:34 / /pods/u/volumes/kubernetes.io~empty-dir/sp\\040ace rw - tmpfs tmpfs rw',
      '39 22 0:35 / /pods/u/volumes/other/mem rw - tmpfs tmpfs rw',
    ].join('\n'),
  );

  it('needs an emptyDir path on a tmpfs mounted exactly there', () => {
    expect(isEphemeralStorage('/pods/u/volumes/kubernetes.io~empty-dir/mem', table)).toBe(true);
    expect(isEphemeralStorage('/pods/u/volumes/kubernetes.io~empty-dir/mem/', table)).toBe(true);
    expect(isEphemeralStorage('/pods/u/volumes/kubernetes.io~empty-dir/sp ace', table)).toBe(true);
    expect(isEphemeralStorage('/pods/u/volumes/kubernetes.io~empty-dir/disk', table)).toBe(false);
    expect(isEphemeralStorage('/pods/u/volumes/other/mem', table)).toBe(false);
    expect(isEphemeralStorage('/pods/u/volumes/kubernetes.io~empty-dir/absent', table)).toBe(false);
    expect(isEphemeralStorage('/pods/u/volumes/kubernetes.io~empty-dir/mem/sub', table)).toBe(false);
    expect(isEphemeralStorage('mem', table)).toBe(false);
    expect(isEphemeralStorage('', table)).toBe(false);
  });
});

describe('isEphemeralStorage on a real tmpfs (root)', skipUnless('ephemeral storage on a real tmpfs', needs.root), () => {
  let base: string;
  let volume: string;
  let diskVolume: string;

  beforeAll(() => {
    base = tempDir();
    volume = join(base, 'volumes', 'kubernetes.io~empty-dir', 'cache vol');
    diskVolume = join(base, 'volumes', 'kubernetes.io~empty-dir', 'plain');
    mkdirSync(volume, { recursive: true });
    mkdirSync(diskVolume, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', volume]);
  });

  afterAll(() => {
    if (volume) execFileSync('umount', ['-l', volume]);
  });

  it('recognises the tmpfs volume (a name with a space, read from /proc/self/mountinfo)', () => {
    expect(isEphemeralStorage(volume)).toBe(true);
    expect(isEphemeralStorage(diskVolume)).toBe(false);
    expect(isEphemeralStorage(join(base, 'volumes'))).toBe(false);
  });

  it('setEphemeralStorageType returns a new spec and leaves the input alone', () => {
    const spec: Spec = {
      ...minimalSpec(),
      mounts: [
        { destination: '/cache', source: volume, type: 'bind', options: ['rbind'] },
        { destination: '/plain', source: diskVolume, type: 'bind' },
        { destination: '/proc', source: 'proc', type: 'proc' },
      ],
    };
    const before = structuredClone(spec);
    const out = setEphemeralStorageType(spec);
    expect(spec).toEqual(before);
    expect(out).not.toBe(spec);
    expect(out.mounts!.map((m) => m.type)).toEqual([EPHEMERAL_TYPE, 'bind', 'proc']);
    expect(out.mounts![0]).toEqual({ destination: '/cache', source: volume, type: 'ephemeral', options: ['rbind'] });
    expect(out.mounts![0]).not.toBe(spec.mounts![0]);
  });

  it('keeps a spec without mounts without mounts', () => {
    const spec = minimalSpec();
    delete spec.mounts;
    expect(setEphemeralStorageType(spec).mounts).toBeUndefined();
  });
});
