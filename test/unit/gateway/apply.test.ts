import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { applyActions } from '../../../gateway/apply.js';
import { isRunning } from '../../../gateway/observe.js';
import type { Action } from '../../../gateway/plan.js';
import { createLogger } from '../../../lib/log.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

const quiet = { write: () => true } as unknown as NodeJS.WritableStream;
const log = createLogger('gateway', { sink: quiet });

/** A process that sleeps; with `ignoreTerm` it survives SIGTERM. */
async function sleeper(ignoreTerm = false): Promise<number> {
  const code = `${ignoreTerm ? 'process.on("SIGTERM", () => {});' : ''} process.stdout.write("up"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  await new Promise((resolve) => child.stdout?.once('data', resolve));
  return child.pid as number;
}

/** The pid of a process that has already exited and been reaped. */
async function goneProcess(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid as number;
}

function stop(pids: number[]): Action {
  return { kind: 'run', ip: '192.0.2.10', reason: 'stopping sshd', argv: ['kill', ...pids.map(String)], waitForExit: pids };
}

describe.skipIf(process.platform !== 'linux')('applyActions: stopping processes', () => {
  it('succeeds when one of the processes exited on its own before kill ran', async () => {
    const running = await sleeper();
    const gone = await goneProcess();

    const failures = await applyActions([stop([running, gone])], { sshdPath: 'sshd', log });

    expect(failures).toEqual([]);
    expect(isRunning(running)).toBe(false);
  });

  it('fails, naming the pid, when a process is still running after kill', async () => {
    const stubborn = await sleeper(true);

    const failures = await applyActions([stop([stubborn])], { sshdPath: 'sshd', log, stopTimeoutMs: 300 });

    expect(failures).toHaveLength(1);
    expect(String(failures[0]?.error)).toContain(`still running after kill ${stubborn}: ${stubborn}`);
  });

  it('skips the later actions for the same IP after a failed stop, and goes on with other IPs', async () => {
    const stubborn = await sleeper(true);
    const other: Action = { kind: 'run', ip: '192.0.2.11', reason: 'probe', argv: ['true'] };
    const after: Action = { kind: 'run', ip: '192.0.2.10', reason: 'would fail', argv: ['false'] };

    const failures = await applyActions([stop([stubborn]), after, other], { sshdPath: 'sshd', log, stopTimeoutMs: 300 });

    expect(failures.map((failure) => failure.action)).toEqual([stop([stubborn])]);
  });
});
