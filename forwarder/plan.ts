import type { Action } from '../lib/action.js';
import { natRestoreInput, natTableMatches, type NatRule, type NatTable } from '../lib/iptables.js';
import { killArgv } from '../lib/process.js';
import { describeRoute, planQuickack, quickackBatch } from '../lib/routes.js';
import type { DesiredState } from './desired.js';
import type { ObservedState, RouteObservation } from './observe.js';
import { tunnelArgv, tunnelKey, tunnelLine, type RunningTunnel, type SshSettings, type Tunnel } from './tunnel.js';

/**
 * Pure planning: from the desired state and what runs now to the commands that close the gap.
 * Stops come first (a replaced tunnel may need its port back; each stop waits for the process
 * to exit), then quickack on the pod's routes (before the tunnels' connections are made), then
 * starts (in parallel: each waits for a round trip to its gateway), then the nat table. Every
 * tunnel action is scoped by the tunnel's identity (tunnelKey).
 */

/**
 * A tunnel start refused at once is tried again soon, in the same cycle: when the gateway gets the
 * same rules change, it reloads its sshd, which stops listening for a few ms while it re-executes
 * (connection refused), and it ends the sessions it accepted around the reload (connection
 * closed); either is over within tens of ms. ssh's words for these count as well as the time, so
 * that a loaded machine, slow to start and report them, still retries. A start that takes longer
 * to fail for another reason (an unreachable gateway) is not repeated: the loop's backoff decides
 * when to try again.
 */
export const START_RETRY = {
  attempts: 2,
  delayMs: 50,
  ifFailedWithinMs: 1000,
  ifErrorMatches: /Connection refused|Connection closed|Connection reset|closed by remote host/,
} as const;

/** Why a running tunnel is stopped. */
export type StopReason = 'not desired' | 'duplicate';

export function planTunnels(desired: readonly Tunnel[], running: readonly RunningTunnel[], ssh: SshSettings): Action[] {
  const wanted = new Map<string, Tunnel>();
  for (const tunnel of desired) if (!wanted.has(tunnelKey(tunnel))) wanted.set(tunnelKey(tunnel), tunnel);

  const stops: Action[] = [];
  const kept = new Set<string>();
  for (const tunnel of [...running].sort((a, b) => a.pid - b.pid)) {
    const key = tunnelKey(tunnel);
    if (!wanted.has(key)) stops.push(stopAction(tunnel, 'not desired'));
    else if (kept.has(key)) stops.push(stopAction(tunnel, 'duplicate'));
    else kept.add(key);
  }
  const starts = [...wanted]
    .filter(([key]) => !kept.has(key))
    .map(([key, tunnel]): Action => ({
      reason: `start ${tunnel.kind} tunnel ${tunnelLine(tunnel)} (missing)`,
      argv: tunnelArgv(tunnel, ssh),
      scope: key,
      parallel: true,
      // ssh -f returns once it is authenticated and the forward is up (ExitOnForwardFailure).
      daemonizes: true,
      interruptible: true,
      timeoutMs: ssh.startTimeoutMs,
      retry: START_RETRY,
    }));
  return [...stops, ...starts];
}

function stopAction(tunnel: RunningTunnel, why: StopReason): Action {
  return {
    reason: `stop ${tunnel.kind} tunnel ${tunnelLine(tunnel)} (pid ${tunnel.pid}, ${why})`,
    argv: killArgv([tunnel.pid]),
    stops: [tunnel.pid],
    scope: tunnelKey(tunnel),
  };
}

export function planNat(desired: readonly NatRule[], live: NatTable): Action[] {
  if (natTableMatches(live, desired)) return [];
  // Alongside the tunnel starts: a connection the new rules send to a port whose tunnel is not up
  // yet is refused, as it is without the rules.
  return [{ reason: `nat table differs (${live.rules.length} live, ${desired.length} wanted)`, argv: ['iptables-restore'], input: natRestoreInput(desired), scope: 'nat', parallel: true }];
}

/** `quickack` on each of the pod's routes that lacks it (see lib/routes.ts), when they are tuned at all. */
export function planRoutes(routes: RouteObservation): Action[] {
  if (!routes.tuned) return [];
  const { changes } = planQuickack(routes.routes);
  if (changes.length === 0) return [];
  return [
    {
      reason: `adding quickack to ${changes.length} route(s), so that their sockets ACK at once: ${changes.map((change) => describeRoute(change.route)).join(', ')}`,
      argv: ['ip', '-batch', '-'],
      input: quickackBatch(changes),
      scope: 'routes',
    },
  ];
}

export function plan(desired: DesiredState, observed: ObservedState, ssh: SshSettings): Action[] {
  const tunnels = planTunnels(desired.tunnels, observed.tunnels, ssh);
  const stops = tunnels.filter((action) => action.stops !== undefined);
  const starts = tunnels.filter((action) => action.stops === undefined);
  return [...stops, ...planRoutes(observed.routes), ...starts, ...planNat(desired.rules, observed.nat)];
}
