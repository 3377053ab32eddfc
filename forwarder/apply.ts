import { CommandError, errorMessage } from '../lib/errors.js';
import { isDebug, mutate } from '../lib/exec.js';
import type { Logger } from '../lib/log.js';
import { describeRoute } from '../lib/routes.js';
import { runningPids } from './observe.js';
import type { Action } from './plan.js';
import { tunnelLine } from './tunnel.js';

export interface ApplyOptions {
  log: Logger;
  /** Aborts a tunnel start in progress (SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** How long one `ssh -f` may take to authenticate and set up its forward. */
  sshStartTimeoutMs: number;
  /** How long to wait for stopped tunnels to exit before starting others. */
  stopWaitMs?: number;
}

export interface ApplyFailure {
  action: Action;
  error: unknown;
}

/** How many `ssh -f` may authenticate at once. */
export const PARALLEL_STARTS = 8;

/**
 * Runs the planned actions in order: stops, then (once the stopped tunnels have exited) starts,
 * several at a time since each waits for a round trip to its gateway, then the nat table. One
 * failing action does not stop the others: each failure is logged with the program's own error
 * and returned.
 */
export async function apply(actions: readonly Action[], options: ApplyOptions): Promise<ApplyFailure[]> {
  const { log } = options;
  const failures: ApplyFailure[] = [];
  const stopped: number[] = [];
  let waited = false;

  const attempt = async (action: Action): Promise<void> => {
    try {
      await applyOne(action, options);
      if (action.kind === 'stop-tunnel') stopped.push(action.tunnel.pid);
    } catch (error) {
      failures.push({ action, error });
      log.error(`${describeAction(action)} failed`, { error: error instanceof CommandError ? commandFailure(error) : errorMessage(error) });
    }
  };

  for (let index = 0; index < actions.length; index++) {
    const action = actions[index] as Action;
    if (options.signal?.aborted) break;
    if (action.kind !== 'stop-tunnel' && !waited) {
      waited = true;
      await waitForExit(stopped, options.stopWaitMs ?? 2000);
    }
    if (action.kind !== 'start-tunnel') {
      await attempt(action);
      continue;
    }
    const batch: Action[] = [action];
    while (batch.length < PARALLEL_STARTS && actions[index + 1]?.kind === 'start-tunnel') batch.push(actions[++index] as Action);
    await Promise.all(batch.map(attempt));
  }
  return failures;
}

async function applyOne(action: Action, options: ApplyOptions): Promise<void> {
  const [program, ...args] = action.argv as [string, ...string[]];
  switch (action.kind) {
    case 'stop-tunnel': {
      options.log.info('stopping tunnel', { kind: action.tunnel.kind, tunnel: tunnelLine(action.tunnel), pid: action.tunnel.pid, reason: action.reason });
      const result = await mutate(program, args, { reject: false });
      // Gone already (it died between ps and kill): that is what we wanted.
      if (!result.ok && !/no such process/i.test(result.stderr)) {
        throw new CommandError({ argv: result.argv, exitCode: result.exitCode, stderr: result.stderr });
      }
      return;
    }
    case 'start-tunnel': {
      options.log.info('starting tunnel', { kind: action.tunnel.kind, tunnel: tunnelLine(action.tunnel) });
      // ssh -f forks once authenticated and the forward is up (ExitOnForwardFailure); the
      // background child points its stdio at /dev/null, so the pipes close when the parent exits.
      await mutate(program, args, { stdout: 'ignore', timeoutMs: options.sshStartTimeoutMs, signal: options.signal });
      return;
    }
    case 'set-quickack': {
      options.log.info('adding quickack to a route, so that its sockets ACK at once', { route: describeRoute(action.route) });
      await mutate(program, args);
      return;
    }
    case 'replace-nat': {
      options.log.info('replacing the nat table', { rules: action.rules.length });
      await mutate(program, args, { input: action.input });
      return;
    }
  }
}

async function waitForExit(pids: readonly number[], timeoutMs: number): Promise<void> {
  if (pids.length === 0 || isDebug()) return;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await runningPids(pids)).length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function describeAction(action: Action): string {
  switch (action.kind) {
    case 'stop-tunnel':
      return `stopping ${action.tunnel.kind} tunnel ${tunnelLine(action.tunnel)} (pid ${action.tunnel.pid})`;
    case 'start-tunnel':
      return `starting ${action.tunnel.kind} tunnel ${tunnelLine(action.tunnel)}`;
    case 'replace-nat':
      return `replacing the nat table (${action.rules.length} rules)`;
    case 'set-quickack':
      return `adding quickack to the route ${describeRoute(action.route)}`;
  }
}

/** The program's own error first: for ssh that is the reason the tunnel could not start. */
function commandFailure(error: CommandError): string {
  const stderr = error.stderr.trim();
  return stderr ? `${stderr} (${error.shortMessage})` : error.shortMessage;
}
