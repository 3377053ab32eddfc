import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ROOT } from '../helpers/cli.js';

/**
 * The three programs stop on SIGINT/SIGTERM through lib/signals' abortOnSignals: the first signal
 * lets the current step finish, the second must end the process even when that step never ends.
 */

const signalsModule = pathToFileURL(path.join(ROOT, 'dist/lib/signals.js')).href;
const logModule = pathToFileURL(path.join(ROOT, 'dist/lib/log.js')).href;
// A program whose step never finishes: it ignores the abort and keeps its event loop busy.
const STUCK_PROGRAM = `
const { abortOnSignals } = await import(${JSON.stringify(signalsModule)});
const { createLogger } = await import(${JSON.stringify(logModule)});
abortOnSignals(createLogger('stuck'));
setInterval(() => undefined, 1000);
process.stdout.write('ready\\n');
`;

let child: ChildProcess | undefined;
// Runs even when a test times out, so that no stuck process outlives it.
afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe.each(['SIGTERM', 'SIGINT'] as const)('a second %s', (signal) => {
  it('ends a process whose current step does not finish, with exit code 1', async () => {
    const stuck = spawn(process.execPath, ['--input-type=module', '-e', STUCK_PROGRAM], { env: { NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child = stuck;
    let stdout = '';
    let stderr = '';
    stuck.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    stuck.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => stuck.on('exit', (code) => resolve(code)));
    await vi.waitFor(() => expect(stdout).toBe('ready\n'), { timeout: 15_000 });
    stuck.kill(signal);
    await vi.waitFor(() => expect(stderr).toContain(`${signal} received: finishing the current step, then stopping`), { timeout: 15_000 });
    expect(stuck.exitCode).toBeNull();
    stuck.kill(signal);
    expect(await exited).toBe(1);
    expect(stderr).toContain(`second ${signal}: exiting now`);
  });
});
