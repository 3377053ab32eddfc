import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TerminalError } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/log.js';
import { runLoop, type LoopOptions } from '../../../lib/loop.js';

const log = createLogger('test', { sink: { write: () => true }, level: 'error' });
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-ext-loop-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a loop whose cycles are counted; stopped (and awaited) after the test. */
function startLoop(options: Partial<LoopOptions> & Pick<LoopOptions, 'reconcile'>): { cycles: () => number; stop: () => Promise<void> } {
  const controller = new AbortController();
  let cycles = 0;
  const done = runLoop({
    log,
    intervalMs: 60_000,
    signal: controller.signal,
    debounceMs: 50,
    ...options,
    onCycle: (outcome) => {
      cycles = outcome.cycle;
      options.onCycle?.(outcome);
    },
  });
  const stop = async () => {
    controller.abort();
    await done;
  };
  cleanups.push(stop);
  return { cycles: () => cycles, stop };
}

describe('runLoop', () => {
  it('reconciles at once, then again on each interval', async () => {
    const loop = startLoop({ reconcile: async () => undefined, intervalMs: 100 });
    await expect.poll(loop.cycles, { timeout: 2000 }).toBeGreaterThanOrEqual(3);
  });

  it('honours requeueAfterMs over the interval', async () => {
    const loop = startLoop({ reconcile: async () => ({ requeueAfterMs: 50 }) });
    await expect.poll(loop.cycles, { timeout: 2000 }).toBeGreaterThanOrEqual(3);
  });

  it('reconciles within a second when a watched file is written in place', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'ips.conf');
    fs.writeFileSync(file, '10.0.0.1\n');
    const loop = startLoop({ reconcile: async () => undefined, watch: [{ path: file, kind: 'file' }] });
    await expect.poll(loop.cycles).toBe(1);
    const started = Date.now();
    fs.writeFileSync(file, '10.0.0.2\n');
    await expect.poll(loop.cycles, { timeout: 1000 }).toBe(2);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('reconciles when a watched file is replaced by a rename, and ignores other files in its directory', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'rules.yaml');
    fs.writeFileSync(file, 'a');
    const loop = startLoop({ reconcile: async () => undefined, watch: [{ path: file, kind: 'file' }] });
    await expect.poll(loop.cycles).toBe(1);
    fs.writeFileSync(path.join(dir, 'unrelated.txt'), 'x');
    fs.writeFileSync(path.join(dir, 'rules.yaml.tmp'), 'b');
    fs.renameSync(path.join(dir, 'rules.yaml.tmp'), file);
    await expect.poll(loop.cycles, { timeout: 1000 }).toBe(2);
    // The unrelated file did not cause a cycle of its own (debounced into the rename's).
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(loop.cycles()).toBe(2);
  });

  it('survives a ConfigMap-style ..data symlink swap and sees the new content', async () => {
    const dir = tempDir();
    const version = (name: string, content: string) => {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, 'data.yaml'), content);
    };
    version('..2026_01', 'one');
    fs.symlinkSync('..2026_01', path.join(dir, '..data'));
    fs.symlinkSync('..data/data.yaml', path.join(dir, 'data.yaml'));
    const seen: string[] = [];
    const file = path.join(dir, 'data.yaml');
    const loop = startLoop({
      reconcile: async () => void seen.push(fs.readFileSync(file, 'utf8')),
      watch: [{ path: file, kind: 'file' }],
    });
    await expect.poll(loop.cycles).toBe(1);
    for (const [name, content] of [['..2026_02', 'two'], ['..2026_03', 'three']] as const) {
      version(name, content);
      fs.symlinkSync(name, path.join(dir, '..data_tmp'));
      fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
      await expect.poll(() => seen.at(-1), { timeout: 1000 }).toBe(content);
    }
  });

  it('reconciles when an entry of a watched directory changes', async () => {
    const dir = tempDir();
    const loop = startLoop({ reconcile: async () => undefined, watch: [{ path: dir, kind: 'dir' }] });
    await expect.poll(loop.cycles).toBe(1);
    fs.writeFileSync(path.join(dir, 'new.yaml'), 'x');
    await expect.poll(loop.cycles, { timeout: 1000 }).toBe(2);
  });

  it('never runs two cycles at once, and runs once more after a change seen mid-cycle', async () => {
    const dir = tempDir();
    let running = 0;
    let overlap = false;
    let release: (() => void) | undefined;
    const loop = startLoop({
      reconcile: async () => {
        running++;
        if (running > 1) overlap = true;
        await new Promise<void>((resolve) => (release = resolve));
        running--;
      },
      watch: [{ path: dir, kind: 'dir' }],
    });
    await expect.poll(() => release !== undefined).toBe(true);
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'x');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const first = release!;
    release = undefined;
    first();
    await expect.poll(() => release !== undefined, { timeout: 1000 }).toBe(true);
    release!();
    expect(overlap).toBe(false);
    await expect.poll(loop.cycles).toBe(2);
  });

  it('retries a failed cycle with backoff, well before the interval', async () => {
    let calls = 0;
    const loop = startLoop({
      reconcile: async () => {
        calls++;
        if (calls < 3) throw new Error('kubectl unreachable');
      },
      backoffMs: 20,
    });
    await expect.poll(loop.cycles, { timeout: 2000 }).toBe(3);
  });

  it('does not retry a TerminalError until the next change', async () => {
    const dir = tempDir();
    const loop = startLoop({
      reconcile: async () => {
        throw new TerminalError('invalid configuration');
      },
      backoffMs: 10,
      watch: [{ path: dir, kind: 'dir' }],
    });
    await expect.poll(loop.cycles).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(loop.cycles()).toBe(1);
    fs.writeFileSync(path.join(dir, 'fixed.yaml'), 'x');
    await expect.poll(loop.cycles, { timeout: 1000 }).toBe(2);
  });

  it('starts the next cycle as soon as the poll check reports a change, long before the interval', async () => {
    let checks = 0;
    const loop = startLoop({
      reconcile: async () => undefined,
      poll: { everyMs: 20, changed: async () => ++checks === 3 },
    });
    await expect.poll(loop.cycles, { timeout: 1000 }).toBe(2);
    // Polling goes on after that cycle, and checks that see nothing start no cycle.
    await expect.poll(() => checks, { timeout: 1000 }).toBeGreaterThan(6);
    expect(loop.cycles()).toBe(2);
  });

  it('treats a poll check that fails as no change and keeps polling', async () => {
    let checks = 0;
    const loop = startLoop({
      reconcile: async () => undefined,
      poll: {
        everyMs: 10,
        changed: async () => {
          checks++;
          throw new Error('ps failed');
        },
      },
    });
    await expect.poll(() => checks, { timeout: 1000 }).toBeGreaterThan(5);
    expect(loop.cycles()).toBe(1);
  });

  it('stops promptly when the signal aborts, after the current cycle', async () => {
    let finished = false;
    const loop = startLoop({
      reconcile: async () => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        finished = true;
      },
    });
    await expect.poll(() => finished).toBe(true);
    const started = Date.now();
    await loop.stop();
    expect(Date.now() - started).toBeLessThan(500);
  });
});
