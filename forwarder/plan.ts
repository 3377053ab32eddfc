import { BUILTIN_NAT_CHAINS, natRestoreInput, sameRules, type NatRule } from '../lib/iptables.js';
import { planQuickack, type Route } from '../lib/routes.js';
import type { DesiredState } from './desired.js';
import type { NatTable, ObservedState, RouteObservation } from './observe.js';
import { tunnelArgv, tunnelKey, type RunningTunnel, type SshSettings, type Tunnel } from './tunnel.js';

/**
 * Pure planning: from the desired state and what runs now to the commands that close the gap.
 * Stops come first (a replaced tunnel may need its port back), then quickack on the pod's routes
 * (before the tunnels' connections are made), then starts, then the nat table.
 */

export type Action =
  | { kind: 'stop-tunnel'; tunnel: RunningTunnel; reason: 'not desired' | 'duplicate'; argv: string[] }
  | { kind: 'start-tunnel'; tunnel: Tunnel; argv: string[] }
  | { kind: 'replace-nat'; rules: NatRule[]; argv: string[]; input: string }
  | { kind: 'set-quickack'; route: Route; argv: string[] };

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
  const starts: Action[] = [...wanted]
    .filter(([key]) => !kept.has(key))
    .map(([, tunnel]) => ({ kind: 'start-tunnel', tunnel, argv: tunnelArgv(tunnel, ssh) }));
  return [...stops, ...starts];
}

function stopAction(tunnel: RunningTunnel, reason: 'not desired' | 'duplicate'): Action {
  return { kind: 'stop-tunnel', tunnel, reason, argv: ['kill', String(tunnel.pid)] };
}

function customChains(chains: readonly string[]): string[] {
  const builtin = new Set<string>(BUILTIN_NAT_CHAINS);
  return [...new Set(chains.filter((chain) => !builtin.has(chain)))].sort();
}

/** True when the live nat table holds exactly the desired rules (and no other chains). */
export function natInSync(desired: readonly NatRule[], live: NatTable): boolean {
  const desiredChains = customChains(desired.map((rule) => rule.chain));
  const liveChains = customChains([...live.chains, ...live.rules.map((rule) => rule.chain)]);
  return sameRules(live.rules, desired) && desiredChains.join(' ') === liveChains.join(' ');
}

export function planNat(desired: readonly NatRule[], live: NatTable): Action[] {
  if (natInSync(desired, live)) return [];
  return [{ kind: 'replace-nat', rules: [...desired], argv: ['iptables-restore'], input: natRestoreInput(desired) }];
}

/** `quickack` on each of the pod's routes that lacks it (see lib/routes.ts), when they are tuned at all. */
export function planRoutes(routes: RouteObservation): Action[] {
  if (!routes.tuned) return [];
  return planQuickack(routes.routes).changes.map(({ route, args }) => ({ kind: 'set-quickack', route, argv: ['ip', ...args] }));
}

export function plan(desired: DesiredState, observed: ObservedState, ssh: SshSettings): Action[] {
  const tunnels = planTunnels(desired.tunnels, observed.tunnels, ssh);
  const stops = tunnels.filter((action) => action.kind === 'stop-tunnel');
  const starts = tunnels.filter((action) => action.kind !== 'stop-tunnel');
  return [...stops, ...planRoutes(observed.routes), ...starts, ...planNat(desired.rules, observed.nat)];
}
