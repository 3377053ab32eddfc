import { errorMessage } from '../lib/errors.js';
import { mutate } from '../lib/exec.js';
import type { Logger } from '../lib/log.js';
import type { Action } from './plan.js';

/**
 * Runs planned actions one after another through lib/exec's `mutate` (printed instead of run
 * under DEBUG=true). A failed action is logged and the rest still run, unless `stopOnFailure`;
 * an abort (SIGINT/SIGTERM) stops between two actions.
 */

export interface ActionFailure {
  action: Action;
  error: unknown;
}

export interface ApplyOptions {
  log: Logger;
  signal?: AbortSignal;
  stopOnFailure?: boolean;
}

export class AbortedError extends Error {
  override name = 'AbortedError';
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('stopped by a signal before the next step');
}

export async function applyActions(actions: readonly Action[], options: ApplyOptions): Promise<ActionFailure[]> {
  const failures: ActionFailure[] = [];
  for (const action of actions) {
    throwIfAborted(options.signal);
    const [program, ...args] = action.argv;
    if (program === undefined) continue;
    options.log.info(action.description);
    try {
      await mutate(program, args, { input: action.input, signal: options.signal });
    } catch (error) {
      throwIfAborted(options.signal);
      options.log.error(`failed to ${action.description}`, { error: errorMessage(error) });
      failures.push({ action, error });
      if (options.stopOnFailure) break;
    }
  }
  return failures;
}
