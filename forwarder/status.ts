import { EXIT, type ExitCode } from '../lib/cli.js';
import { errorMessage } from '../lib/errors.js';
import { canonicalRule, type NatRule } from '../lib/iptables.js';
import type { ForwarderSettings } from './settings.js';
import { readConfigMapOnce } from './configmap-watch.js';
import { desiredFromSources, type DesiredState } from './desired.js';
import { describeTarget } from './rules-source.js';
import { observe, type ObservedState } from './observe.js';
import { plan, planNat } from './plan.js';
import { describeRoute, hasQuickack, planQuickack } from '../lib/routes.js';
import { tunnelKey, tunnelLine, type Tunnel } from './tunnel.js';

/** `forwarder status`: what runs and is applied next to what the data file asks for. */

export type TunnelState = 'running' | 'missing' | 'extra' | 'duplicate';

export interface TunnelStatus {
  tunnel: Tunnel;
  state: TunnelState;
  pid?: number;
}

export interface StatusReport {
  name: string;
  dataFile: string;
  /** Why the data file could not be used; then only what runs is shown. */
  dataError?: string;
  /** Where the rules come from (the ConfigMap through the API, or the data file), and why not the API. */
  source?: string;
  hasEntry: boolean;
  tunnels: TunnelStatus[];
  nat: { inSync: boolean; desired: number; live: number; missing: string[]; extra: string[] };
  /** quickack on the pod's routes: those that lack it, and those left alone with the reason. */
  routes: { tuned: false; why: string } | { tuned: true; withQuickack: number; missing: string[]; leftAlone: string[] };
  inSync: boolean;
}

function ruleText(rule: NatRule): string {
  return [rule.chain, ...rule.args].join(' ');
}

/**
 * The status is what the next cycle would do: a running tunnel that plan() stops is extra (or a
 * duplicate of a desired one), a desired tunnel that plan() starts is missing, and the nat table
 * differs when plan() replaces it. The missing and extra rules are listed to explain the latter.
 */
export function buildStatus(
  settings: Pick<ForwarderSettings, 'name' | 'dataFile' | 'ssh'>,
  desired: DesiredState | { error: string },
  observed: ObservedState,
): StatusReport {
  const known = 'error' in desired ? undefined : desired;
  const actions = known ? plan(known, observed, settings.ssh) : [];
  const wanted = new Set((known?.tunnels ?? []).map(tunnelKey));
  const stopped = new Set(actions.flatMap((action) => action.stops ?? []));
  const started = new Set(actions.filter((action) => action.daemonizes).map((action) => action.scope));

  const tunnels: TunnelStatus[] = [...observed.tunnels]
    .sort((a, b) => a.pid - b.pid)
    .map((running): TunnelStatus => {
      const state: TunnelState = !stopped.has(running.pid) ? 'running' : wanted.has(tunnelKey(running)) ? 'duplicate' : 'extra';
      return { tunnel: running, state, pid: running.pid };
    });
  const missing = new Map((known?.tunnels ?? []).filter((tunnel) => started.has(tunnelKey(tunnel))).map((tunnel) => [tunnelKey(tunnel), tunnel]));
  for (const tunnel of missing.values()) tunnels.push({ tunnel, state: 'missing' });

  const desiredRules = known?.rules ?? [];
  const liveKeys = new Set(observed.nat.rules.map(canonicalRule));
  const desiredKeys = new Set(desiredRules.map(canonicalRule));
  const nat = {
    inSync: known !== undefined && planNat(desiredRules, observed.nat).length === 0,
    desired: desiredRules.length,
    live: observed.nat.rules.length,
    missing: known ? desiredRules.filter((rule) => !liveKeys.has(canonicalRule(rule))).map(ruleText) : [],
    extra: known ? observed.nat.rules.filter((rule) => !desiredKeys.has(canonicalRule(rule))).map(ruleText) : [],
  };
  const quickack = observed.routes.tuned ? planQuickack(observed.routes.routes) : undefined;
  const routes: StatusReport['routes'] =
    observed.routes.tuned && quickack
      ? {
          tuned: true,
          withQuickack: observed.routes.routes.filter(hasQuickack).length,
          missing: quickack.changes.map((change) => describeRoute(change.route)),
          leftAlone: quickack.leftAlone.map((entry) => `${describeRoute(entry.route)}: ${entry.reason}`),
        }
      : { tuned: false, why: observed.routes.tuned ? '' : observed.routes.why };
  return {
    name: settings.name,
    dataFile: settings.dataFile,
    ...('error' in desired ? { dataError: desired.error } : {}),
    hasEntry: known?.hasEntry ?? false,
    tunnels,
    nat,
    routes,
    inSync: known !== undefined && actions.length === 0,
  };
}

const STATE_NOTE: Record<TunnelState, string> = {
  running: 'ok',
  missing: 'missing (will be started)',
  extra: 'extra (will be stopped)',
  duplicate: 'duplicate (will be stopped)',
};

export function formatStatus(report: StatusReport): string {
  const lines = [`forwarder ${report.name} (data file ${report.dataFile})`];
  if (report.source !== undefined) lines.push(`rules: ${report.source}`);
  if (report.dataError) lines.push(`data file: unusable, nothing will change until it is fixed: ${report.dataError}`);
  else if (!report.hasEntry) lines.push(`data file: no entry for ${report.name}: no tunnels and no rules wanted`);
  lines.push(`tunnels: ${report.tunnels.filter((status) => status.state === 'running').length} running`);
  for (const status of report.tunnels) {
    const pid = status.pid === undefined ? '-' : String(status.pid);
    lines.push(`  ${status.tunnel.kind.padEnd(6)} ${tunnelLine(status.tunnel)}  pid ${pid}  ${report.dataError ? 'running' : STATE_NOTE[status.state]}`);
  }
  const { nat } = report;
  if (report.dataError) lines.push(`nat table: ${nat.live} rules`);
  else lines.push(`nat table: ${nat.inSync ? 'in sync' : 'differs (will be replaced)'}, ${nat.live} live, ${nat.desired} desired`);
  for (const rule of nat.missing) lines.push(`  missing  ${rule}`);
  for (const rule of nat.extra) lines.push(`  extra    ${rule}`);
  if (!report.dataError && !nat.inSync && nat.missing.length === 0 && nat.extra.length === 0) lines.push('  the same rules in another order');
  const { routes } = report;
  if (!routes.tuned) lines.push(`routes: left alone (${routes.why})`);
  else lines.push(`routes: quickack on ${routes.withQuickack}, missing on ${routes.missing.length}${routes.missing.length > 0 ? ' (will be added)' : ''}`);
  if (routes.tuned) {
    for (const route of routes.missing) lines.push(`  missing quickack  ${route}`);
    for (const route of routes.leftAlone) lines.push(`  left alone  ${route}`);
  }
  lines.push(report.inSync ? 'in sync' : 'not in sync');
  return `${lines.join('\n')}\n`;
}

/** Prints the status; the exit code is 2 when the data file is unusable, else 1 when anything differs. */
export async function showForwarderStatus(settings: ForwarderSettings, output: { write(text: string): unknown }): Promise<ExitCode> {
  const api = settings.rulesConfigMap ? await readConfigMapOnce(settings.rulesConfigMap) : undefined;
  let desired: DesiredState | { error: string };
  let source: string | undefined;
  try {
    ({ desired, source } = desiredFromSources(settings, api, {}));
  } catch (error) {
    desired = { error: errorMessage(error) };
  }
  if (settings.rulesConfigMap && api?.error !== undefined) {
    source = `${source ?? `data file ${settings.dataFile}`} (${describeTarget(settings.rulesConfigMap)} cannot be read through the API: ${api.error})`;
  }
  const report = { ...buildStatus(settings, desired, await observe(settings)), ...(settings.rulesConfigMap && source !== undefined ? { source } : {}) };
  output.write(formatStatus(report));
  return report.dataError !== undefined ? EXIT.badInput : report.inSync ? EXIT.ok : EXIT.failed;
}
