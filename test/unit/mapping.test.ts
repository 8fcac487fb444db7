import { spawn } from 'node:child_process';
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

  it('stays atomic across processes: 6 writers and 2 readers on one container id, each its own process', async () => {
    // Each process imports the built module (dist/, made by test/setup/build-ts.ts) and works on
    // the same root; a reader records every answer, and any error (a partial entry) fails it.
    const root = join(tempDir(), 'mapping');
    const module = join(import.meta.dirname, '..', '..', 'dist', 'src', 'mapping', 'container-id-mapping.js');
    const writer = (sb: string) => `
      const { ContainerIdMapping } = await import(${JSON.stringify(module)});
      const m = new ContainerIdMapping(${JSON.stringify(root)});
      for (let i = 0; i < 60; i++) await m.add('shared', '${sb}-' + (i % 3));`;
    const reader = `
      const { ContainerIdMapping } = await import(${JSON.stringify(module)});
      const m = new ContainerIdMapping(${JSON.stringify(root)});
      const seen = new Set();
      const end = Date.now() + 30000;
      while (Date.now() < end) {
        seen.add(String(await m.fetch('shared')));
        if (require('node:fs').existsSync(${JSON.stringify(join(root, '..', 'writers-done'))})) break;
      }
      process.stdout.write(JSON.stringify([...seen]));`;
    const run = (code: string) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', code.replace("require('node:fs')", '(await import("node:fs"))')], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('close', (c) => resolve({ code: c, out, err }));
      });
    const writers = Array.from({ length: 6 }, (_, i) => `w${i}`);
    const readers = [run(reader), run(reader)];
    const written = await Promise.all(writers.map((w) => run(writer(w))));
    writeFileSync(join(root, '..', 'writers-done'), '');
    for (const w of written) expect(w.code, w.err).toBe(0);
    const valid = new Set(['undefined', ...writers.flatMap((w) => [0, 1, 2].map((i) => `${w}-${i}`))]);
    for (const r of await Promise.all(readers)) {
      expect(r.code, r.err).toBe(0);
      const seen = JSON.parse(r.out) as string[];
      expect(seen.length).toBeGreaterThan(0);
      for (const s of seen) expect(valid.has(s), `a reader saw ${s}`).toBe(true);
    }
    // Exactly one mapping, one of the writers' last ones, and nothing staged left behind.
    expect(readdirSync(root)).toEqual(['shared']);
    expect(readdirSync(join(root, 'shared'))).toHaveLength(1);
    expect(writers.map((w) => `${w}-2`)).toContain(await new ContainerIdMapping(root).fetch('shared'));
  }, 60_000);

  it('keeps different containers independent under concurrency', async () => {
    const root = tempDir();
    const m = new ContainerIdMapping(root);
    await Promise.all(Array.from({ length: 50 }, (_, i) => m.add(`c${i}`, `s${i}`)));
    for (let i = 0; i < 50; i++) expect(await m.fetch(`c${i}`)).toBe(`s${i}`);
    await Promise.all(Array.from({ length: 50 }, (_, i) => m.delete(`c${i}`)));
    expect(readdirSync(root)).toEqual([]);
  });
});
