import { applyActions, type Action, type ActionFailure, type ApplyOptions } from '../lib/action.js';

/**
 * The gateway's failure policy: the actions of one IP build on each other (no device without the
 * netns, no sshd without its config), so after a failure the rest of that IP's actions are
 * skipped; the other IPs go on.
 */
export function applyGatewayActions(actions: readonly Action[], options: Omit<ApplyOptions, 'policy' | 'scopeField'>): Promise<ActionFailure[]> {
  return applyActions(actions, { ...options, policy: 'skip-scope', scopeField: 'ip' });
}
