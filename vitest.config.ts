import { defineConfig } from 'vitest/config';

// Four layers: unit (pure logic), cli (the built bin/ programs against stand-ins on PATH),
// system (as root: real network namespaces, iptables, sshd and traffic), cluster (bin/controller
// against a real control plane, started once for the layer). System and cluster tests run one file
// at a time: they share the kernel's network and process tables, or the one control plane.
export default defineConfig({
  test: {
    expect: { requireAssertions: true },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          expect: { requireAssertions: true },
        },
      },
      {
        test: {
          name: 'cli',
          include: ['test/cli/**/*.test.ts'],
          testTimeout: 30_000,
          // Some setups run whole controller cycles, as the tests do.
          hookTimeout: 30_000,
          expect: { requireAssertions: true },
        },
      },
      {
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/cluster/setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
          expect: { requireAssertions: true },
        },
      },
      {
        test: {
          name: 'system',
          include: ['test/system/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          expect: { requireAssertions: true },
        },
      },
    ],
  },
});
