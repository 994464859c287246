import { defineConfig } from 'vitest/config'

// Tests that start sandboxes, sshd and PTYs need real processes (raw mode, signals, chdir): the forks pool.
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    include: ['test/**/*.test.ts'],
    reporters: ['default'],
  },
})
