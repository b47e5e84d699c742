import { defineConfig } from 'vitest/config';

// End-to-end tests: a real control plane (SQLite) and evaluator started per test
// file, Chromium (the Debian package) driven by playwright-core.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.test.ts'],
    environment: 'node',
    globalSetup: ['test/e2e/global-setup.ts'],
    testTimeout: 60000,
    hookTimeout: 120000,
    fileParallelism: false,
  },
});
