/** Temporary directories that are removed after each test file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = 'nodevisor-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A temporary directory on the tmpfs at /dev/shm (see needs.shmTmpfs), removed like tempDir's. */
export function shmTempDir(prefix = 'nodevisor-test-'): string {
  const dir = mkdtempSync(join('/dev/shm', prefix));
  made.push(dir);
  return dir;
}
