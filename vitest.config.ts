import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each file gets its own database and Redis prefix, so files may run side by side;
    // two at a time suits a 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
  },
});
