import fs from 'node:fs';
import path from 'node:path';
import { CommandError, displayCommand, errorMessage } from './errors.js';
import { debugOutput, isDebug, mutate, run } from './exec.js';
import type { Fields, Logger } from './log.js';
import { runningPids, stopProcesses } from './process.js';

/**
 * What a plan is made of, for all three components, and the one function that carries a plan
 * out. An action is a command (an argv array, never a shell string) plus why it is needed;
 * apply runs the actions in order and reports, it decides nothing.
 */

export interface Action {
  /** Why the action is needed (what is wrong or missing); logged before it runs and shown by status. */
  reason: string;
  /** The command, run through lib/exec's mutate (printed instead of run under DEBUG=true). */
  argv: readonly string[];
  /** Text for the command's stdin. */
  input?: string | undefined;
  /**
   * What the action belongs to (an IP, a gateway host, a tunnel). The failure policy 'skip-scope'
   * skips the later actions of a scope after one of its actions failed; status groups by it.
   */
  scope?: string | undefined;
  /**
   * The command stops these processes (argv is their `kill`): it succeeds once they are gone,
   * also when one was gone before kill ran, and fails naming any that still runs.
   */
  stops?: readonly number[] | undefined;
  /**
   * Instead of running argv on its own: write `content` next to `path`, run argv with that
   * candidate's path appended (a syntax check such as `sshd -t -f`), then rename it into place,
   * so that the file is never half-written or invalid.
   */
  writesFile?: { path: string; content: string } | undefined;
  /**
   * Run together with the neighbouring actions that have the same value (each waits on the
   * network): `true`, or the name of a group, so that two groups in a row still run one after the other.
   */
  parallel?: boolean | string | undefined;
  /** The command may be interrupted by SIGINT/SIGTERM (others always finish). */
  interruptible?: boolean | undefined;
  /** The command leaves a background process behind (ssh -f): its stdout is not collected. */
  daemonizes?: boolean | undefined;
  /**
   * After the command, wait until this pid file names a running process: a daemon that forks
   * writes it a moment after the command returns, and the next cycle must see it running.
   */
  waitsForPidFile?: string | undefined;
  /** Kill the command after this long (lib/exec's default otherwise). */
  timeoutMs?: number | undefined;
  /**
   * Run the command again after `delayMs` when it failed within `ifFailedWithinMs` (a quick
   * refusal, not a timeout) or with an error that `ifErrorMatches` (a refusal that a loaded
   * machine took longer to report), up to `attempts` more times; any other failure is final.
   */
  retry?: { attempts: number; delayMs: number; ifFailedWithinMs: number; ifErrorMatches?: RegExp | undefined } | undefined;
}

/**
 * What happens after an action fails:
 * - 'continue': every other action still runs (they do not build on each other);
 * - 'skip-scope': the later actions of the same scope are skipped (they build on the failed
 *   one); other scopes go on.
 */
export type FailurePolicy = 'continue' | 'skip-scope';

export interface ApplyOptions {
  log: Logger;
  policy: FailurePolicy;
  /** Checked between actions: a stop request never interrupts a command half-way (except interruptible ones). */
  signal?: AbortSignal | undefined;
  /** The log field that names an action's scope (e.g. 'ip'); default 'scope'. */
  scopeField?: string;
  /** How long stopped processes get to exit. */
  stopTimeoutMs?: number | undefined;
}

export interface ActionFailure {
  action: Action;
  error: unknown;
}

/** SIGINT/SIGTERM arrived before every action had run. */
export class AbortedError extends Error {
  override name = 'AbortedError';
}

export function throwIfAborted(signal: AbortSignal | undefined, what = 'the next step'): void {
  if (signal?.aborted) throw new AbortedError(`stopped by a signal before ${what}`);
}

/**
 * Carries out a teardown plan: nothing to do is success, and any failed action makes the
 * teardown fail (after the rest ran, as the component's policy allows).
 */
export async function applyTeardown(
  actions: readonly Action[],
  apply: (actions: readonly Action[]) => Promise<ActionFailure[]>,
  log: Logger,
  fields: Fields,
): Promise<void> {
  if (actions.length === 0) {
    log.info('teardown: nothing to remove', fields);
    return;
  }
  const failures = await apply(actions);
  if (failures.length > 0) throw new Error(`teardown: ${failures.length} of ${actions.length} step(s) failed`);
  log.info(`teardown done: ${actions.length} step(s)`, fields);
}

/** How many parallel actions run at once. */
export const PARALLEL_LIMIT = 8;

/**
 * Runs the actions in order and returns the failures (each also logged). Throws AbortedError
 * when the signal aborts before the last action has run.
 */
export async function applyActions(actions: readonly Action[], options: ApplyOptions): Promise<ActionFailure[]> {
  const { log } = options;
  const failures: ActionFailure[] = [];
  const failedScopes = new Set<string | undefined>();
  const fields = (action: Action): Fields => ({ [options.scopeField ?? 'scope']: action.scope, command: displayCommand(action.argv) });

  const attempt = async (action: Action): Promise<void> => {
    if (options.policy === 'skip-scope' && failedScopes.has(action.scope)) {
      log.debug(`skipped after an earlier failure: ${action.reason}`, fields(action));
      return;
    }
    log.info(action.reason, fields(action));
    try {
      await applyWithRetries(action, options, fields(action));
    } catch (error) {
      log.error(`failed: ${action.reason}`, { ...fields(action), error: failureText(error) });
      failures.push({ action, error });
      failedScopes.add(action.scope);
    }
  };

  for (let index = 0; index < actions.length; index++) {
    throwIfAborted(options.signal, `the remaining ${actions.length - index} action(s)`);
    const batch = [actions[index] as Action];
    while (batch[0]?.parallel && batch.length < PARALLEL_LIMIT && actions[index + 1]?.parallel === batch[0].parallel) batch.push(actions[++index] as Action);
    await Promise.all(batch.map(attempt));
  }
  return failures;
}

/** applyOne, again after a quick failure as the action's `retry` says. */
async function applyWithRetries(action: Action, options: ApplyOptions, fields: Fields): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const started = performance.now();
    try {
      await applyOne(action, options);
      return;
    } catch (error) {
      const { retry } = action;
      const quick = performance.now() - started <= (retry?.ifFailedWithinMs ?? 0);
      const refused = retry?.ifErrorMatches?.test(failureText(error)) === true;
      if (retry === undefined || attempt >= retry.attempts || !(quick || refused) || options.signal?.aborted) throw error;
      options.log.warn(`failed at once; retrying in ${retry.delayMs} ms: ${action.reason}`, { ...fields, error: failureText(error) });
      await new Promise((resolve) => setTimeout(resolve, retry.delayMs));
    }
  }
}

async function applyOne(action: Action, options: ApplyOptions): Promise<void> {
  if (action.stops !== undefined) {
    await stopProcesses(action.stops, { timeoutMs: options.stopTimeoutMs });
    return;
  }
  if (action.writesFile !== undefined) {
    await writeCheckedFile(action.writesFile, action.argv);
    return;
  }
  const [file, ...args] = action.argv;
  if (file === undefined) return;
  await mutate(file, args, {
    input: action.input,
    signal: action.interruptible ? options.signal : undefined,
    timeoutMs: action.timeoutMs,
    stdout: action.daemonizes ? 'ignore' : 'pipe',
  });
  if (action.waitsForPidFile !== undefined) await waitForPidFile(action.waitsForPidFile);
}

const PID_FILE_TIMEOUT_MS = 5000;

async function waitForPidFile(file: string): Promise<void> {
  if (isDebug()) return;
  const deadline = Date.now() + PID_FILE_TIMEOUT_MS;
  for (;;) {
    const pid = Number(fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '');
    if (pid > 1 && (await runningPids([pid])).length > 0) return;
    if (Date.now() >= deadline) throw new Error(`${file} names no running process ${PID_FILE_TIMEOUT_MS / 1000} s after the start`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function writeCheckedFile(target: { path: string; content: string }, check: readonly string[]): Promise<void> {
  if (isDebug()) {
    debugOutput.write(`write ${target.path}\n${target.content}`);
    return;
  }
  fs.mkdirSync(path.dirname(target.path), { recursive: true });
  const candidate = `${target.path}.new`;
  fs.writeFileSync(candidate, target.content, { mode: 0o644 });
  try {
    const [file, ...args] = check;
    if (file !== undefined) await run(file, [...args, candidate]);
    fs.renameSync(candidate, target.path);
  } finally {
    fs.rmSync(candidate, { force: true });
  }
}

/** The program's own error first (for ssh, the reason a tunnel could not start), then the command. */
function failureText(error: unknown): string {
  if (!(error instanceof CommandError)) return errorMessage(error);
  const stderr = error.stderr.trim().split('\n').slice(0, 5).join('\n');
  return stderr ? `${stderr} (${error.shortMessage})` : error.shortMessage;
}
