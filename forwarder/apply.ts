import { applyActions, type Action, type ActionFailure, type ApplyOptions } from '../lib/action.js';

/**
 * The forwarder's failure policy: tunnels and the nat table do not build on each other, so one
 * failing action never holds back another; each failure is logged with the program's own error.
 */
export function applyForwarderActions(actions: readonly Action[], options: Omit<ApplyOptions, 'policy'>): Promise<ActionFailure[]> {
  return applyActions(actions, { ...options, policy: 'continue' });
}
