import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyGatewayActions } from '../../../gateway/apply.js';
import type { Action } from '../../../lib/action.js';
import { createLogger } from '../../../lib/log.js';
import { killArgv } from '../../../lib/process.js';
import { isRunning } from '../../../lab/netns.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const log = createLogger('gateway', { sink: { write: () => true } });

/** A process that sleeps; with `ignoreTerm` it survives SIGTERM. */
async function sleeper(ignoreTerm = false): Promise<number> {
  const code = `${ignoreTerm ? 'process.on("SIGTERM", () => {});' : ''} process.stdout.write("up"); setInterval(() => {}, 1000);`;
  const child: ChildProcess = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  cleanups.push(() => child.kill('SIGKILL'));
  await new Promise((resolve) => child.stdout?.once('data', resolve));
  return child.pid as number;
}

/** The pid of a process that has already exited and been reaped. */
async function goneProcess(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid as number;
}

function scratch(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-ext-apply-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function stop(ip: string, pids: number[]): Action {
  return { reason: 'stopping sshd', argv: killArgv(pids), stops: pids, scope: ip };
}

function touch(ip: string, file: string): Action {
  return { reason: `mark ${path.basename(file)}`, argv: ['touch', file], scope: ip };
}

describe.skipIf(process.platform !== 'linux')('applyGatewayActions', () => {
  it('succeeds when one of the processes exited on its own before kill ran', async () => {
    const running = await sleeper();
    const gone = await goneProcess();

    const failures = await applyGatewayActions([stop('192.0.2.10', [running, gone])], { log });

    expect(failures).toEqual([]);
    expect(isRunning(running)).toBe(false);
  });

  it('fails, naming the pid, when a process is still running after kill', async () => {
    const stubborn = await sleeper(true);

    const failures = await applyGatewayActions([stop('192.0.2.10', [stubborn])], { log, stopTimeoutMs: 300 });

    expect(failures).toHaveLength(1);
    expect(String(failures[0]?.error)).toContain(`still running after kill ${stubborn}: ${stubborn}`);
  });

  it("skips the later actions of the IP whose action failed, and runs the other IP's actions", async () => {
    const dir = scratch();
    const failing: Action = { reason: 'fails', argv: ['false'], scope: '192.0.2.10' };
    const sameIp = touch('192.0.2.10', path.join(dir, 'same-ip'));
    const otherIp = touch('192.0.2.11', path.join(dir, 'other-ip'));

    const failures = await applyGatewayActions([failing, sameIp, otherIp], { log });

    expect(failures.map((failure) => failure.action)).toEqual([failing]);
    expect(fs.existsSync(path.join(dir, 'same-ip'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'other-ip'))).toBe(true);
  });
});
