import { run } from '../lib/exec.js';
import fs from 'node:fs';
import { parseIptablesSave, type NatTable } from '../lib/iptables.js';
import { psMatchedNothing } from '../lib/process.js';
import { parseRoutesJson, ROUTE_SHOW_ARGS, type Route } from '../lib/routes.js';
import { TUNNEL_MARKERS, type RunningTunnel, type TunnelKind } from './tunnel.js';

/**
 * Reads what is running and applied in the pod: ssh tunnels (`ps`), the nat table
 * (`iptables-save`) and the pod's routes (`ip route`).
 */

export interface SshProcess {
  pid: number;
  /** The command line split at whitespace, as `ps -o args` prints it. */
  args: string[];
}

/** The pod's routes, or why they are left alone. */
export type RouteObservation = { tuned: true; routes: Route[] } | { tuned: false; why: string };

export interface ObservedState {
  tunnels: RunningTunnel[];
  nat: NatTable;
  routes: RouteObservation;
}

export const PS_ARGS = ['-C', 'ssh', '-o', 'pid,args', '--no-headers'] as const;
export const IPTABLES_SAVE_ARGS = ['-t', 'nat'] as const;

/** Parses `ps -o pid,args --no-headers` output; lines that do not start with a pid are ignored. */
export function parsePs(text: string): SshProcess[] {
  const processes: SshProcess[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*(\d+)\s+(.*\S)\s*$/.exec(line);
    if (!match) continue;
    processes.push({ pid: Number(match[1]), args: (match[2] as string).split(/\s+/) });
  }
  return processes;
}

function containsSequence(words: readonly string[], sequence: readonly string[]): boolean {
  for (let start = 0; start + sequence.length <= words.length; start++) {
    if (sequence.every((word, offset) => words[start + offset] === word)) return true;
  }
  return false;
}

/** The kind of tunnel a command line is, by its marker words (`-g -f -N -L` / `-f -N -R`). */
export function tunnelKindOf(args: readonly string[]): TunnelKind | undefined {
  if (containsSequence(args, TUNNEL_MARKERS.local)) return 'local';
  if (containsSequence(args, TUNNEL_MARKERS.remote)) return 'remote';
  return undefined;
}

/**
 * The ssh processes that are tunnels, identified by their last two words (the forward's spec and
 * the host), with the `--` this forwarder puts between them skipped (tunnels started without it,
 * e.g. by the original, are recognised all the same).
 */
export function findTunnels(processes: readonly SshProcess[]): RunningTunnel[] {
  const tunnels: RunningTunnel[] = [];
  for (const { pid, args } of processes) {
    const kind = tunnelKindOf(args);
    const words = args[args.length - 2] === '--' ? [...args.slice(0, -2), args[args.length - 1] as string] : args;
    if (kind === undefined || words.length < 2) continue;
    tunnels.push({ pid, kind, spec: words[words.length - 2] as string, host: words[words.length - 1] as string });
  }
  return tunnels;
}

/** The running tunnels; throws when ps fails (a failed ps is not "no ssh runs": every tunnel would be started again). */
export async function observeTunnels(signal?: AbortSignal): Promise<RunningTunnel[]> {
  try {
    const result = await run('ps', PS_ARGS, { signal });
    return findTunnels(parsePs(result.stdout));
  } catch (error) {
    if (psMatchedNothing(error)) return [];
    throw error;
  }
}

export async function observeNat(signal?: AbortSignal): Promise<NatTable> {
  const result = await run('iptables-save', IPTABLES_SAVE_ARGS, { signal });
  return parseIptablesSave(result.stdout);
}

/**
 * Whether this process runs in the host's (the initial) network namespace. Some of the kernel's
 * network settings exist only there: their /proc/sys entries are missing in every other
 * namespace, such as a pod's.
 */
export function inHostNetworkNamespace(): boolean {
  return fs.existsSync('/proc/sys/net/core/netdev_max_backlog');
}

/** The pod's routes, read only when they are to be tuned, and never in the host's namespace. */
export async function observeRoutes(quickack: boolean, signal?: AbortSignal): Promise<RouteObservation> {
  if (!quickack) return { tuned: false, why: 'QUICKACK=off' };
  if (inHostNetworkNamespace()) return { tuned: false, why: "this is the host's network namespace, whose routes are not this program's" };
  const result = await run('ip', ROUTE_SHOW_ARGS, { signal });
  return { tuned: true, routes: parseRoutesJson(result.stdout) };
}

export async function observe(options: { quickack: boolean }, signal?: AbortSignal): Promise<ObservedState> {
  const [tunnels, nat, routes] = await Promise.all([observeTunnels(signal), observeNat(signal), observeRoutes(options.quickack, signal)]);
  return { tunnels, nat, routes };
}
