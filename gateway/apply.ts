import fs from 'node:fs';
import path from 'node:path';
import { debugOutput, isDebug, mutate, run } from '../lib/exec.js';
import { displayCommand, errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { isRunning, parsePidList, processStartTimes } from './observe.js';
import type { Action } from './plan.js';

export interface ApplyOptions {
  sshdPath: string;
  log: Logger;
  /** Checked between actions: a stop request never interrupts a command half-way. */
  signal?: AbortSignal | undefined;
  /** How long stopped processes get to exit before the action counts as failed (default 5 s). */
  stopTimeoutMs?: number | undefined;
}

export interface ApplyFailure {
  ip: string | undefined;
  action: Action;
  error: unknown;
}

export function describeAction(action: Action): string {
  switch (action.kind) {
    case 'run':
      return displayCommand(action.argv);
    case 'write-sshd-config':
      return `write ${action.path}`;
    case 'stop-stale-sessions':
      return `kill the sessions in ${action.netns} opened since ${new Date(action.sinceMs).toISOString()}`;
  }
}

/** How long a reloaded sshd takes to re-execute: connections accepted until then got the old config. */
export const RELOAD_SETTLE_MS = 300;

async function stopStaleSessions(action: Extract<Action, { kind: 'stop-stale-sessions' }>, log: Logger): Promise<void> {
  if (!isDebug()) await new Promise((resolve) => setTimeout(resolve, RELOAD_SETTLE_MS));
  const until = Date.now();
  const listed = await run('ip', ['netns', 'pids', action.netns]);
  const pids = parsePidList(listed.stdout).filter((pid) => pid !== action.listenerPid);
  const started = processStartTimes(pids);
  const stale = pids.filter((pid) => started[pid] !== undefined && (started[pid] as number) >= action.sinceMs && (started[pid] as number) <= until);
  if (stale.length === 0) return;
  log.info('stopping ssh sessions opened under the previous config', { ip: action.ip, sessions: stale.length });
  await mutate('kill', stale.map(String), { reject: false });
}

/**
 * Writes the config next to its place, has sshd check it (`sshd -t -f`), then renames it into
 * place, so that sshd never reads a half-written or invalid config.
 */
async function writeSshdConfig(file: string, content: string, sshdPath: string): Promise<void> {
  if (isDebug()) {
    debugOutput.write(`write ${file}\n${content}`);
    return;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const candidate = `${file}.new`;
  fs.writeFileSync(candidate, content, { mode: 0o644 });
  try {
    await run(sshdPath, ['-t', '-f', candidate]);
    fs.renameSync(candidate, file);
  } finally {
    fs.rmSync(candidate, { force: true });
  }
}

/** True once `pid` is gone or a zombie; false if it still runs after `timeoutMs`. */
async function waitForExit(pid: number, timeoutMs = 5000): Promise<boolean> {
  if (isDebug()) return true;
  const deadline = Date.now() + timeoutMs;
  while (isRunning(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/**
 * Stops processes: the goal is that they are gone. A process that exited on its own between
 * observe and kill makes `kill` exit 1 ("No such process") although nothing is left to do, so
 * the action fails only when one of them still runs afterwards.
 */
async function stopProcesses(argv: readonly string[], pids: readonly number[], timeoutMs?: number): Promise<void> {
  const [file, ...args] = argv;
  const result = await mutate(file as string, args, { reject: false });
  const running: number[] = [];
  for (const pid of pids) if (!(await waitForExit(pid, timeoutMs))) running.push(pid);
  if (running.length > 0) {
    const detail = result.ok ? '' : `: ${result.stderr.trim()}`;
    throw new Error(`still running after ${displayCommand(argv)}: ${running.join(' ')}${detail}`);
  }
}

/**
 * Runs the actions in order. When one fails, the remaining actions for the same IP are skipped
 * (they build on it) and the other IPs go on; the failures are returned.
 */
export async function applyActions(actions: readonly Action[], options: ApplyOptions): Promise<ApplyFailure[]> {
  const { log } = options;
  const failures: ApplyFailure[] = [];
  const failedIps = new Set<string | undefined>();
  for (const action of actions) {
    if (options.signal?.aborted) {
      log.info('stopping before the remaining actions', { remaining: actions.length - actions.indexOf(action) });
      break;
    }
    if (failedIps.has(action.ip)) {
      log.debug('skipped after an earlier failure', { ip: action.ip, command: describeAction(action) });
      continue;
    }
    log.info(action.reason, { ip: action.ip, command: describeAction(action) });
    try {
      if (action.kind === 'write-sshd-config') {
        await writeSshdConfig(action.path, action.content, options.sshdPath);
      } else if (action.kind === 'stop-stale-sessions') {
        await stopStaleSessions(action, log);
      } else if (action.waitForExit !== undefined) {
        await stopProcesses(action.argv, action.waitForExit, options.stopTimeoutMs);
      } else {
        const [file, ...args] = action.argv;
        await mutate(file as string, args, { input: action.input });
      }
    } catch (error) {
      log.error('failed', { ip: action.ip, command: describeAction(action), error: errorMessage(error) });
      failures.push({ ip: action.ip, action, error });
      failedIps.add(action.ip);
    }
  }
  return failures;
}
