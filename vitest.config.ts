import { defineConfig } from 'vitest/config';

// Three layers: unit (pure logic), cli (the built bin/ programs against stand-ins on PATH),
// system (as root: real network namespaces, iptables, sshd and traffic). System tests run one
// file at a time: they share the kernel's network and process tables.
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
