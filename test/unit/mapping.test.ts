import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ContainerIdMapping, DEFAULT_MAPPING_ROOT } from '../../src/mapping/container-id-mapping.js';
import { tempDir } from '../helpers/tmp.js';

describe('ContainerIdMapping', () => {
  it('defaults to /run/nodevisor/mapping', () => {
    expect(new ContainerIdMapping().root).toBe(DEFAULT_MAPPING_ROOT);
  });

  it('adds, fetches and deletes, with Kata\'s layout', async () => {
    const root = join(tempDir(), 'not-yet');
    const m = new ContainerIdMapping(root);
    await m.add('c1', 'sb1');
    expect(readdirSync(join(root, 'c1'))).toEqual(['sb1']);
    expect(statSync(join(root, 'c1', 'sb1')).isDirectory()).toBe(true);
    expect(statSync(join(root, 'c1', 'sb1')).mode & 0o777).toBe(0o750);
    expect(await m.fetch('c1')).toBe('sb1');
    await m.delete('c1');
    expect(await m.fetch('c1')).toBeUndefined();
    expect(readdirSync(root)).toEqual([]);
  });

  it('returns undefined for an unknown container and deletes it without error', async () => {
    const m = new ContainerIdMapping(tempDir());
    expect(await m.fetch('nobody')).toBeUndefined();
    await expect(m.delete('nobody')).resolves.toBeUndefined();
  });

  it('replaces a previous mapping', async () => {
    const root = tempDir();
    const m = new ContainerIdMapping(root);
    await m.add('c1', 'old');
    await m.add('c1', 'new');
    expect(await m.fetch('c1')).toBe('new');
    expect(readdirSync(root)).toEqual(['c1']);
  });

  it('rejects missing and invalid ids', async () => {
    const m = new ContainerIdMapping(tempDir());
    await expect(m.add('', 's')).rejects.toThrow('Missing container ID');
    await expect(m.add('c', '')).rejects.toThrow('Missing sandbox ID');
    await expect(m.fetch('')).rejects.toThrow('Missing container ID');
    await expect(m.delete('')).rejects.toThrow('Missing container ID');
    await expect(m.add('../../etc', 's')).rejects.toThrow(/invalid container ID/);
    await expect(m.add('c', 'a/b')).rejects.toThrow(/invalid sandbox ID/);
  });

  it('reports an entry with two sandboxes, and one with none', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'c2', 's1'), { recursive: true });
    mkdirSync(join(root, 'c2', 's2'));
    mkdirSync(join(root, 'c3'));
    const m = new ContainerIdMapping(root);
    await expect(m.fetch('c2')).rejects.toMatchObject({ code: 'EBADMAPPING', message: expect.stringMatching(/holds 2 \(s1, s2\)|holds 2 \(s2, s1\)/) });
    await expect(m.fetch('c3')).rejects.toThrow(/holds 0/);
  });

  it('fails clearly when the root cannot be a directory', async () => {
    const file = join(tempDir(), 'file');
    writeFileSync(file, '');
    const m = new ContainerIdMapping(file);
    await expect(m.add('c', 's')).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it('leaves exactly one mapping after concurrent adds, and readers never see a partial entry', async () => {
    const root = tempDir();
    const m = new ContainerIdMapping(root);
    const sandboxes = Array.from({ length: 40 }, (_, i) => `sb${i}`);
    let reading = true;
    const seen = new Set<string | undefined>();
    const reader = (async () => {
      // Every read must be a whole answer: unknown, or one of the sandboxes; never an error.
      while (reading) seen.add(await new ContainerIdMapping(root).fetch('shared'));
    })();
    for (let round = 0; round < 5; round++) {
      await Promise.all(sandboxes.map((sb) => m.add('shared', sb)));
      const now = await m.fetch('shared');
      expect(sandboxes).toContain(now);
      expect(readdirSync(join(root, 'shared'))).toHaveLength(1);
    }
    reading = false;
    await reader;
    for (const s of seen) if (s !== undefined) expect(sandboxes).toContain(s);
    // No temporary or discarded entries are left behind.
    expect(readdirSync(root)).toEqual(['shared']);
  });

  it('keeps different containers independent under concurrency', async () => {
    const root = tempDir();
    const m = new ContainerIdMapping(root);
    await Promise.all(Array.from({ length: 50 }, (_, i) => m.add(`c${i}`, `s${i}`)));
    for (let i = 0; i < 50; i++) expect(await m.fetch(`c${i}`)).toBe(`s${i}`);
    await Promise.all(Array.from({ length: 50 }, (_, i) => m.delete(`c${i}`)));
    expect(readdirSync(root)).toEqual([]);
  });
});
