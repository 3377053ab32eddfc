import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TerminalError } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/log.js';
import { isRelevantChange, runLoop, type LoopOptions } from '../../../lib/loop.js';

const lines: string[] = [];
const log = createLogger('test', { sink: { write: (line: string) => lines.push(line) }, level: 'debug', color: false });
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.useRealTimers();
  lines.length = 0;
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-ext-loop-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a loop whose cycles are counted; stopped (and awaited) after the test. */
function startLoop(options: Partial<LoopOptions> & Pick<LoopOptions, 'reconcile'>): { cycles: () => number; stop: () => Promise<void>; done: Promise<void>; controller: AbortController } {
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
  return { cycles: () => cycles, stop, done, controller };
}

/** Lets the loop's promises settle without moving the (fake) clock. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe('runLoop: timing (fake timers)', () => {
  it('reconciles at once, then again on each interval and not before', async () => {
    vi.useFakeTimers();
    const loop = startLoop({ reconcile: async () => undefined, intervalMs: 1000 });
    await settle();
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(loop.cycles()).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(loop.cycles()).toBe(3);
  });

  it('starts the next cycle as soon as a source of changes triggers, without the debounce, and ends the source with the loop', async () => {
    vi.useFakeTimers();
    let fire: ((reason: string) => void) | undefined;
    let sourceEnded = false;
    const loop = startLoop({
      reconcile: async () => undefined,
      sources: [
        async (trigger, signal) => {
          fire = trigger;
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
          sourceEnded = true;
        },
      ],
    });
    await settle();
    expect(loop.cycles()).toBe(1);
    // A watch event is whole: the cycle starts without the file watches' debounce (50 ms here).
    fire?.('a watch event');
    await settle();
    expect(loop.cycles()).toBe(2);
    await loop.stop();
    expect(sourceEnded).toBe(true);
  });

  it('honours requeueAfterMs over the interval', async () => {
    vi.useFakeTimers();
    const loop = startLoop({ reconcile: async () => ({ requeueAfterMs: 50 }) });
    await settle();
    await vi.advanceTimersByTimeAsync(49);
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(loop.cycles()).toBe(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(loop.cycles()).toBe(4);
  });

  it('logs the end of each successful cycle with its time and whether it changed anything, with a timestamp (the moment its changes are in force)', async () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-01-02T03:04:05.000Z'));
    const results = [{ changed: true }, {}, undefined];
    const loop = startLoop({
      reconcile: async () => {
        await new Promise((resolve) => setTimeout(resolve, 30));
        return results.shift();
      },
      intervalMs: 1000,
    });
    await vi.advanceTimersByTimeAsync(30);
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(2060);
    expect(loop.cycles()).toBe(3);
    const done = lines.filter((line) => / cycle \d+ done/.test(line)).map((line) => line.trim());
    expect(done).toEqual([
      '2026-01-02T03:04:05.030Z DEBUG test cycle 1 done ms=30 changed=true',
      '2026-01-02T03:04:06.060Z DEBUG test cycle 2 done ms=30 changed=false',
      '2026-01-02T03:04:07.090Z DEBUG test cycle 3 done ms=30 changed=false',
    ]);
  });

  it('logs no end for a failed cycle (its error instead)', async () => {
    vi.useFakeTimers();
    startLoop({
      reconcile: async () => {
        throw new Error('ssh refused');
      },
      backoffMs: 1000,
    });
    await settle();
    expect(lines.some((line) => / cycle 1 failed/.test(line))).toBe(true);
    expect(lines.some((line) => / cycle 1 done/.test(line))).toBe(false);
  });

  it('retries a failed cycle with a doubling backoff, well before the interval', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const loop = startLoop({
      reconcile: async () => {
        calls++;
        if (calls < 4) throw new Error('kubectl unreachable');
      },
      backoffMs: 20,
    });
    await settle();
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(20);
    expect(loop.cycles()).toBe(2);
    await vi.advanceTimersByTimeAsync(39);
    expect(loop.cycles()).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(loop.cycles()).toBe(3);
    await vi.advanceTimersByTimeAsync(80);
    expect(loop.cycles()).toBe(4);
    // Success resets the backoff: the next cycle waits for the interval.
    await vi.advanceTimersByTimeAsync(59_999);
    expect(loop.cycles()).toBe(4);
  });

  it('does not retry a TerminalError: the next cycle comes with a change or the resync only', async () => {
    vi.useFakeTimers();
    const loop = startLoop({
      reconcile: async () => {
        throw new TerminalError('invalid configuration');
      },
      backoffMs: 10,
      intervalMs: 10_000,
    });
    await settle();
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(loop.cycles()).toBe(2);
  });

  it('starts the next cycle as soon as the poll check reports a change, long before the interval', async () => {
    vi.useFakeTimers();
    let checks = 0;
    const loop = startLoop({ reconcile: async () => undefined, poll: { everyMs: 20, changed: async () => ++checks === 3 } });
    await settle();
    await vi.advanceTimersByTimeAsync(59);
    expect(loop.cycles()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(loop.cycles()).toBe(2);
    // Polling goes on after that cycle, and checks that see nothing start no cycle.
    await vi.advanceTimersByTimeAsync(200);
    expect(checks).toBe(13);
    expect(loop.cycles()).toBe(2);
  });

  it('treats a poll check that fails as no change and keeps polling', async () => {
    vi.useFakeTimers();
    let checks = 0;
    const failing = async (): Promise<boolean> => {
      checks++;
      throw new Error('ps failed');
    };
    const loop = startLoop({ reconcile: async () => undefined, poll: { everyMs: 10, changed: failing } });
    await settle();
    await vi.advanceTimersByTimeAsync(100);
    expect(checks).toBe(10);
    expect(loop.cycles()).toBe(1);
  });

  it('does not poll after a failed cycle: the backoff, not the poll, decides when to retry', async () => {
    vi.useFakeTimers();
    let checks = 0;
    const loop = startLoop({
      reconcile: async () => {
        throw new TerminalError('invalid configuration');
      },
      intervalMs: 10_000,
      poll: { everyMs: 10, changed: async () => ++checks > 0 },
    });
    await settle();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(checks).toBe(0);
    expect(loop.cycles()).toBe(1);
  });

  it('stops when the signal aborts during a cycle: that cycle finishes, no other starts, and the loop ends without waiting for the interval', async () => {
    vi.useFakeTimers();
    let release: (() => void) | undefined;
    let abortedInside = false;
    const loop = startLoop({
      reconcile: async (signal) => {
        await new Promise<void>((resolve) => (release = resolve));
        abortedInside = signal.aborted;
      },
    });
    await settle();
    expect(release).toBeDefined();
    loop.controller.abort();
    let ended = false;
    void loop.done.then(() => (ended = true));
    await settle();
    expect(ended).toBe(false);
    release?.();
    await settle();
    expect(abortedInside).toBe(true);
    expect(ended).toBe(true);
    expect(loop.cycles()).toBe(1);
  });
});

describe('runLoop: watching (real files)', () => {
  it('reconciles within a second when a watched file is written in place', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'ips.conf');
    fs.writeFileSync(file, '10.0.0.1\n');
    const loop = startLoop({ reconcile: async () => undefined, watch: [{ path: file, kind: 'file' }] });
    await expect.poll(loop.cycles).toBe(1);
    fs.writeFileSync(file, '10.0.0.2\n');
    await expect.poll(loop.cycles, { timeout: 1000 }).toBe(2);
  });

  it('reconciles when a watched file is replaced by a rename', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'rules.yaml');
    fs.writeFileSync(file, 'a');
    const loop = startLoop({ reconcile: async () => undefined, watch: [{ path: file, kind: 'file' }] });
    await expect.poll(loop.cycles).toBe(1);
    fs.writeFileSync(path.join(dir, 'rules.yaml.tmp'), 'b');
    fs.renameSync(path.join(dir, 'rules.yaml.tmp'), file);
    await expect.poll(loop.cycles, { timeout: 1000 }).toBe(2);
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
    // The change is seen (debounced) while the first cycle still runs.
    await expect.poll(() => lines.some((line) => line.includes('change seen, reconciling'))).toBe(true);
    expect(loop.cycles()).toBe(0);
    const first = release!;
    release = undefined;
    first();
    await expect.poll(() => release !== undefined, { timeout: 1000 }).toBe(true);
    release!();
    expect(overlap).toBe(false);
    await expect.poll(loop.cycles).toBe(2);
  });
});

describe('isRelevantChange', () => {
  it.each([
    ['file', '/conf/rules.yaml', '/conf/rules.yaml', true],
    ['file', '/conf/rules.yaml', '/conf/..data', true],
    ['file', '/conf/rules.yaml', '/conf/..2026_01', true],
    ['file', '/conf/rules.yaml', '/conf/rules.yaml.tmp', false],
    ['file', '/conf/rules.yaml', '/conf/unrelated.txt', false],
    ['dir', '/conf', '/conf/a.yaml', true],
    ['dir', '/conf', '/conf', true],
    ['dir', '/conf', '/conf/sub/a.yaml', false],
  ] as const)('a %s target %s: a change of %s is relevant: %s', (kind, target, changed, expected) => {
    expect(isRelevantChange({ kind, path: target }, changed)).toBe(expected);
  });
});
