import { buildDesired } from './desired.js';
import type { LinkState } from './ip-json.js';
import { readIpsConf } from './ipsconf.js';
import { namesFor } from './names.js';
import { observe, PRIVSEP_DIR, type GatewayState, type IpState } from './observe.js';
import type { GatewaySettings } from './settings.js';
import type { Action } from '../lib/action.js';
import { EXIT, type ExitCode } from '../lib/cli.js';
import { natTableMatches } from '../lib/iptables.js';
import { desiredNat, isDefaultRoute, plan } from './plan.js';
import { hasQuickack } from '../lib/routes.js';
import { readRulesFile, type RulesState } from './rules-file.js';

/**
 * `gateway status IPS_CONF`: per IP, what is set up and what is wrong, as the next cycle would
 * see it (the problems are the reasons of the actions it would take). Exit 1 when anything is
 * wrong.
 */

function ipFacts(ip: string, state: IpState | undefined, options: GatewaySettings, rules: RulesState): string[] {
  const names = namesFor(ip, options.placement);
  if (!state) return ['not observed'];
  const device: LinkState | undefined = state.links.find((link) => link.name === names.device);
  const address = device?.addresses.map((entry) => `${entry.local}/${entry.prefixlen}`).join(', ') || 'none';
  const route = state.routes.filter(isDefaultRoute).map((entry) => `via ${entry.gateway ?? '-'} dev ${entry.dev ?? '-'}${hasQuickack(entry) ? ' quickack' : ''}`).join(', ') || 'none';
  const tuned = state.routes.filter((entry) => hasQuickack(entry)).length;
  const nat = desiredNat(rules, ip);
  const natText =
    nat === undefined
      ? `${state.nat.rules.length} rule(s); rules file ${rules.kind === 'absent' ? 'absent' : 'unusable'}`
      : `${state.nat.rules.length} rule(s), ${natTableMatches(state.nat, nat) ? 'as in the rules file' : `rules file wants ${nat.length}`}`;
  const sshd = state.sshd.running
    ? `running, pid ${state.sshd.pid}`
    : state.sshd.pidFileExists
      ? 'not running (stale pid file)'
      : 'not running';
  return [
    `netns    ${names.netns}: ${state.netnsExists ? 'present' : 'missing'}`,
    `device   ${names.device}: ${device ? `${device.kind ?? '?'} ${device.mode ?? ''} ${device.up ? 'up' : 'down'}`.replace(/\s+/g, ' ') : 'missing'}`,
    `address  ${address}`,
    `route    default ${route}`,
    `routes   ${state.routes.length}, ${tuned} with quickack`,
    `sshd     ${sshd}; config ${state.config === undefined ? 'missing' : names.configFile}`,
    `nat      ${natText}`,
  ];
}

export function renderStatus(ips: readonly string[], state: GatewayState, actions: readonly Action[], options: GatewaySettings, rules: RulesState): string {
  const lines: string[] = [];
  const rulesLine =
    rules.kind === 'ok' ? `${options.rulesFile}: ok` : rules.kind === 'absent' ? `${options.rulesFile}: absent (no rules yet)` : `WRONG: ${rules.reason}`;
  lines.push(`rules file  ${rulesLine}`);
  const global = actions.filter((action) => action.scope === undefined);
  for (const action of global) lines.push(`WRONG: ${action.reason}`);
  for (const ip of ips) {
    const problems = [...new Set(actions.filter((action) => action.scope === ip).map((action) => action.reason))];
    lines.push('', `${ip}: ${problems.length === 0 ? 'ok' : `${problems.length} problem(s)`}`);
    for (const fact of ipFacts(ip, state.ips[ip], options, rules)) lines.push(`  ${fact}`);
    for (const problem of problems) lines.push(`  WRONG: ${problem}`);
  }
  for (const managed of state.managed) {
    if (ips.includes(managed.ip)) continue;
    lines.push('', `${managed.ip}: still set up (netns ${managed.netns}) but not listed; the gateway will tear it down`);
  }
  return `${lines.join('\n')}\n`;
}

/** Prints the status; the exit code is 2 when the rules file is invalid, else 1 when the next cycle has anything to do. */
export async function showGatewayStatus(options: GatewaySettings, output: { write(text: string): unknown }): Promise<ExitCode> {
  const ips = readIpsConf(options.ipsConf);
  const rules = readRulesFile(options.rulesFile);
  const state = await observe(ips, { ...options.placement, hostKeyDir: options.hostKeyDir, privsepDir: PRIVSEP_DIR });
  const actions = plan(buildDesired(options, ips, rules), state);
  output.write(renderStatus(ips, state, actions, options, rules));
  return rules.kind === 'invalid' ? EXIT.badInput : actions.length > 0 ? EXIT.failed : EXIT.ok;
}
