/**
 * vitest globalSetup: brings the TypeScript build (dist/, what the package's users and the
 * `nodevisor` CLI run) up to date once per test run, before any test file starts, so the tests
 * that run the CLI or import the package by name as child processes see the current sources.
 * Runs in the vitest main process.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export default function setup(): void {
  const root = join(import.meta.dirname, '..', '..');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
}
