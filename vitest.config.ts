import { defineConfig } from 'vitest/config';

// Native code, signals, namespaces: every test file runs in its own forked process so a
// thread that changed namespace, or a crash in the addon, cannot affect another file.
// The skip reporter lists every skip with its reason and, with CI=true, fails the run on a
// reason that is not in test/skip-allowlist.txt (docs/testing.md).
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default', './test/helpers/skip-reporter.ts'],
    // dist/ is built once per run (the CLI and the by-name import tests run it).
    globalSetup: ['./test/setup/build-ts.ts'],
  },
});
