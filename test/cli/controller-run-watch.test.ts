import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { ControllerBench, externalService } from './controller-run-fixture.js';
import { writeConfigMapVolume } from '../../lab/configmap.js';

/**
 * The long-running controller: a change in CONF_DIR (a file written, or a ConfigMap-style
 * `..data` symlink swap) starts a cycle within a second although INTERVAL is a minute, and
 * SIGTERM ends it cleanly.
 */

let bench: ControllerBench;
let child: ChildProcess | undefined;
let stderr = '';

afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  bench.remove();
});

function startController(): void {
  stderr = '';
  child = spawn(process.execPath, [path.join(ROOT, 'bin/controller'), bench.conf], {
    env: { ...bench.env({ INTERVAL: '60' }), NO_COLOR: '1', LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
}

/** Waits until the controller has settled: the pod's IP is in the rules and the gateway has them. */
async function waitSettled(expectedText: string): Promise<void> {
  await expect
    .poll(() => {
      const published = bench.forwarderRules('es-a') ?? '';
      const delivered = bench.gatewayRules() ?? '';
      return published.includes(expectedText) && published.includes('--to-destination 10.244.1.1:') && delivered.includes(expectedText);
    }, { timeout: 15_000, interval: 50 })
    .toBe(true);
  // The last step of a cycle is the ConfigMap: wait until the loop says it waits a whole
  // INTERVAL (no pod left without an IP, nothing to retry), so that the change below is what
  // starts the next cycle.
  await expect.poll(() => stderr.trimEnd().split('\n').at(-1) ?? '', { timeout: 15_000, interval: 50 }).toMatch(/waiting up to 60\.0s for the next cycle$/);
}

/**
 * Makes a change and returns how long until the controller started a cycle for it (its debug
 * log says so), whatever the time its stand-ins then take to start.
 */
async function reactionTime(change: () => void): Promise<number> {
  const seen = (): number => stderr.split('change seen, reconciling').length;
  const before = seen();
  const started = performance.now();
  change();
  await expect.poll(seen, { timeout: 5000, interval: 10 }).toBeGreaterThan(before);
  return performance.now() - started;
}

async function stopController(): Promise<void> {
  const running = child;
  if (!running) throw new Error('controller not started');
  const exited = new Promise<number | null>((resolve) => running.once('exit', (code) => resolve(code)));
  running.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(stderr).toContain('SIGTERM received');
  expect(stderr).toContain('controller stopped');
}

describe('controller watching CONF_DIR', () => {
  it('starts a cycle within a second of a conf file change and delivers the new rules, then stops on SIGTERM', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('a.yaml', externalService('es-a'));
    startController();
    await waitSettled('192.168.122.139');
    // The end of each cycle says whether it changed anything: the moment a change is in force.
    expect(stderr).toMatch(/cycle 1 done ms=\d+ changed=true\n/);

    // The same content again: a cycle runs and changes nothing.
    const cyclesBefore = stderr.split('cycle done: nothing to change').length;
    bench.writeConf('a.yaml', externalService('es-a'));
    await expect.poll(() => stderr.split('cycle done: nothing to change').length, { timeout: 10_000, interval: 20 }).toBeGreaterThan(cyclesBefore);
    await expect.poll(() => stderr, { timeout: 5000, interval: 20 }).toMatch(/cycle done: nothing to change\n.*cycle \d+ done ms=\d+ changed=false\n/);

    const elapsed = await reactionTime(() => bench.writeConf('a.yaml', externalService('es-a', { targetIP: '192.168.122.150' })));
    expect(elapsed).toBeLessThan(1000);
    await expect.poll(() => bench.gatewayRules() ?? '', { timeout: 10_000 }).toContain('192.168.122.150');

    await stopController();
    await bench.teardownAndExpectClean();
  });

  it('follows a ConfigMap-style ..data symlink swap', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    writeConfigMapVolume(bench.conf, { 'a.yaml': externalService('es-a') });
    startController();
    await waitSettled('192.168.122.139');

    const elapsed = await reactionTime(() => writeConfigMapVolume(bench.conf, { 'a.yaml': externalService('es-a', { targetIP: '192.168.122.151' }) }));
    expect(elapsed).toBeLessThan(1000);
    await expect.poll(() => bench.gatewayRules() ?? '', { timeout: 10_000 }).toContain('192.168.122.151');

    await stopController();
    await bench.teardownAndExpectClean();
  });
});
