import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT, standinPath, tempDir } from '../helpers/cli.js';
import { forwarderData, writeConfigMap } from '../helpers/forwarder-lab.js';

/**
 * The forwarder loop's timing decisions, read from its own debug log (no wall-clock
 * measurement): when a cycle ends and whether it changed anything, how soon it looks again after
 * starting tunnels, and how soon it retries a failed tunnel start.
 */

const STANDINS = path.join(ROOT, 'test/bin/forwarder');
const NAME = 'my-external-service1';
const L1 = '2049:192.168.122.139:8000,192.168.122.200';
const L2 = '2050:192.168.122.139:8000,192.168.122.201';

let work: ReturnType<typeof tempDir>;
let env: NodeJS.ProcessEnv;
let state: string;

beforeEach(() => {
  work = tempDir('k8xfw-cycles-');
  state = path.join(work.dir, 'state');
  const configDir = path.join(work.dir, 'config');
  fs.mkdirSync(path.join(state, 'procs'), { recursive: true });
  writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': [L1, L2] }) });
  env = {
    PATH: standinPath(STANDINS),
    FORWARDER_STANDIN_DIR: state,
    STANDIN_LOG: path.join(work.dir, 'calls.jsonl'),
    EXTERNAL_SERVICE_NAME: NAME,
    DATA_FILE: path.join(configDir, 'data.yaml'),
    INTERVAL: '60',
    NO_COLOR: '1',
    LOG_LEVEL: 'debug',
  };
});

afterEach(() => {
  work.remove();
});

/** Runs the forwarder loop until `until` holds for its stderr (or 15 s pass), then stops it; returns its stderr. */
async function runUntil(until: (stderr: string) => boolean): Promise<string> {
  const child = spawn(path.join(ROOT, 'bin/forwarder'), [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await expect.poll(() => until(stderr), { timeout: 15_000, interval: 50 }).toBe(true);
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited, stderr).toBe(0);
  return stderr;
}

/** The loop's own lines: cycle ends and waits, in order. */
function loopLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((line) => / forwarder (cycle \d+ (?:done ms=\d+ changed=\w+|failed; retrying in [\d.]+s)|waiting up to [\d.]+s for the next cycle)/.exec(line)?.[1])
    .filter((line): line is string => line !== undefined)
    .map((line) => line.replace(/ms=\d+/, 'ms=N'));
}

describe('forwarder (loop): cycle ends and the waits after them', () => {
  it('ends the cycle that started tunnels with changed=true and looks again 0.3 s later (not at the resync); that cycle changes nothing', async () => {
    const stderr = await runUntil((text) => loopLines(text).includes('cycle 2 done ms=N changed=false'));
    expect(loopLines(stderr).slice(0, 4)).toEqual([
      'cycle 1 done ms=N changed=true',
      'waiting up to 0.3s for the next cycle',
      'cycle 2 done ms=N changed=false',
      'waiting up to 60.0s for the next cycle',
    ]);
  });

  it('tries a start refused at once twice more within the cycle, then retries the cycle after 0.05 s (printed rounded up as 0.1s), doubling', async () => {
    fs.writeFileSync(path.join(state, 'ssh-fail'), '192\\.168\\.122\\.201$\n');
    const stderr = await runUntil((text) => loopLines(text).filter((line) => line.includes('failed')).length >= 3);
    expect(loopLines(stderr).filter((line) => line.includes('failed')).slice(0, 3)).toEqual([
      'cycle 1 failed; retrying in 0.1s',
      'cycle 2 failed; retrying in 0.1s',
      'cycle 3 failed; retrying in 0.2s',
    ]);
    const firstCycle = stderr.slice(0, stderr.indexOf('cycle 1 failed'));
    expect(firstCycle.match(/failed at once; retrying in 50 ms: start local tunnel 2050:192\.168\.122\.139:8000,192\.168\.122\.201/g)).toHaveLength(2);
    expect(firstCycle.match(/ERROR forwarder failed: start local tunnel 2050/g)).toHaveLength(1);
  });
});
