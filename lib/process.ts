import { CommandError, displayCommand } from './errors.js';
import { isDebug, mutate, run } from './exec.js';

/**
 * Stopping processes, the one way every component does it: `kill` them (through lib/exec, so
 * DEBUG=true prints it), then wait until `ps` no longer lists them as running. The goal is that
 * they are gone: a pid that is already gone (it exited between observe and kill, and kill said
 * "No such process") is success; a pid still running when the time is up is an error naming it.
 */

export interface StopOptions {
  /** The signal to send (kill's default, SIGTERM, when not given). */
  signal?: 'HUP' | 'INT' | 'TERM' | 'KILL';
  /** How long the processes get to exit (default 5 s). */
  timeoutMs?: number;
}

export const STOP_TIMEOUT_MS = 5000;
const POLL_MS = 50;

/** The pids of `ps -o pid=,stat= -p PIDS` output whose process runs (a zombie has exited). */
export function parseRunningPids(psOutput: string): number[] {
  return psOutput
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, stat]) => pid !== undefined && /^\d+$/.test(pid) && !stat?.startsWith('Z'))
    .map(([pid]) => Number(pid));
}

/**
 * Whether a failed `ps` only said that no process matched: procps exits 1 then, printing nothing
 * at all. Any other failure (a message on stderr, another exit code, a signal) is not an answer:
 * read as "nothing runs", it would have the caller start again what runs already.
 */
export function psMatchedNothing(error: unknown): boolean {
  return error instanceof CommandError && error.exitCode === 1 && error.stdout.trim() === '' && error.stderr.trim() === '';
}

/** The pids among `pids` that still run; throws when ps fails. */
export async function runningPids(pids: readonly number[]): Promise<number[]> {
  if (pids.length === 0) return [];
  try {
    return parseRunningPids((await run('ps', ['-o', 'pid=,stat=', '-p', pids.join(',')])).stdout);
  } catch (error) {
    if (psMatchedNothing(error)) return [];
    throw error;
  }
}

export function killArgv(pids: readonly number[], signal?: StopOptions['signal']): string[] {
  return ['kill', ...(signal === undefined ? [] : [`-${signal}`]), ...pids.map(String)];
}

export async function stopProcesses(pids: readonly number[], options: StopOptions = {}): Promise<void> {
  if (pids.length === 0) return;
  const argv = killArgv(pids, options.signal);
  const result = await mutate('kill', argv.slice(1), { reject: false });
  if (isDebug()) return;
  const deadline = Date.now() + (options.timeoutMs ?? STOP_TIMEOUT_MS);
  let running = await runningPids(pids);
  while (running.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    running = await runningPids(running);
  }
  if (running.length > 0) {
    const detail = result.ok ? '' : `: ${result.stderr.trim()}`;
    throw new Error(`still running after ${displayCommand(argv)}: ${running.join(' ')}${detail}`);
  }
}
