import { BUILTIN_NAT_CHAINS, natRestoreInput, sameRules, type NatRule } from '../lib/iptables.js';
import type { DesiredState } from './desired.js';
import type { NatTable, ObservedState } from './observe.js';
import { tunnelArgv, tunnelKey, type RunningTunnel, type SshSettings, type Tunnel } from './tunnel.js';

/**
 * Pure planning: from the desired state and what runs now to the commands that close the gap.
 * Stops come first (a replaced tunnel may need its port back), then starts, then the nat table.
 */

export type Action =
  | { kind: 'stop-tunnel'; tunnel: RunningTunnel; reason: 'not desired' | 'duplicate'; argv: string[] }
  | { kind: 'start-tunnel'; tunnel: Tunnel; argv: string[] }
  | { kind: 'replace-nat'; rules: NatRule[]; argv: string[]; input: string };

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

export function plan(desired: DesiredState, observed: ObservedState, ssh: SshSettings): Action[] {
  return [...planTunnels(desired.tunnels, observed.tunnels, ssh), ...planNat(desired.rules, observed.nat)];
}
