import { applyActions, type Action, type ActionFailure, type ApplyOptions } from '../lib/action.js';

/**
 * The controller's failure policy: each object is its own scope, so a failed object never holds
 * back another; a gateway host's rename is skipped when the copy to that host failed.
 */
export function applyControllerActions(actions: readonly Action[], options: Omit<ApplyOptions, 'policy'>): Promise<ActionFailure[]> {
  return applyActions(actions, { ...options, policy: 'skip-scope' });
}
