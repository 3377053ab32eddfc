import type { Action } from '../lib/action.js';
import { EXIT, type ExitCode } from '../lib/cli.js';
import { natTableMatches } from '../lib/iptables.js';
import { buildDesired } from './desired.js';
import type { LinkState } from './ip-json.js';
import { namesFor } from './names.js';
import { observe, PRIVSEP_DIR, type GatewayState, type IpState } from './observe.js';
import { hasQuickack } from '../lib/routes.js';
import { advertSourceOf, desiredNat, isDefaultRoute, plan } from './plan.js';
import { hostKeyProblem, readGatewayIps } from './reconcile.js';
import { readRulesFile, type RulesState } from './rules-file.js';
import type { GatewaySettings } from './settings.js';
import { roleOf, routerIdFor, type Role } from './vrrp.js';

/**
 * `gateway status IPS_CONF`: per IP, what is set up and what is wrong, as the next cycle would
 * see it (the problems are the reasons of the actions it would take), and with failover the VRRP
 * role of this node. Exit 1 when anything is wrong, 2 when an input file is invalid. `--json`
 * prints the same as JSON.
 */

export interface VrrpStatus {
  /** What the running keepalived last announced; 'down' without keepalived, 'starting' before its first announcement. */
  role: Role;
  /** This node has the address (keepalived added it). */
  holder: boolean;
  routerId: number;
  priority?: number | undefined;
  /** When keepalived announced the role (ISO 8601). */
  since?: string | undefined;
  keepalived: { running: boolean; pid?: number | undefined };
}

export interface IpStatus {
  ip: string;
  ok: boolean;
  problems: string[];
  netns: { name: string; present: boolean };
  device: { name: string; present: boolean; kind?: string | undefined; mode?: string | undefined; up: boolean };
  addresses: string[];
  defaultRoutes: string[];
  /** The netns's routes (every table), and those with quickack. */
  routes: { total: number; quickack: number };
  sshd: { running: boolean; pid?: number | undefined; stalePidFile: boolean; config?: string | undefined };
  nat: { live: number; wanted?: number | undefined; inSync?: boolean | undefined };
  vrrp?: VrrpStatus | undefined;
}

export interface GatewayStatus {
  ok: boolean;
  rulesFile: { path: string; state: RulesState['kind']; reason?: string | undefined };
  failover?: { keepalived: string; priority: number; preempt: boolean; advertIntervalS: number } | undefined;
  problems: string[];
  ips: IpStatus[];
  /** IPs set up earlier and no longer listed: the gateway will tear them down. */
  leftovers: { ip: string; netns: string }[];
}

function vrrpStatus(ip: string, state: IpState, holder: boolean): VrrpStatus {
  const role = roleOf(state.keepalived, state.announced);
  const announced = role === 'down' || role === 'starting' ? undefined : state.announced;
  return {
    role,
    holder,
    routerId: routerIdFor(ip),
    priority: announced?.priority,
    since: announced ? new Date(announced.writtenAtMs ?? announced.atMs).toISOString() : undefined,
    keepalived: { running: state.keepalived?.running === true, pid: state.keepalived?.running ? state.keepalived.pid : undefined },
  };
}

/** What is wrong with the VRRP side of an IP that no planned action shows. */
function vrrpProblems(vrrp: VrrpStatus, options: GatewaySettings): string[] {
  const problems: string[] = [];
  if (!vrrp.keepalived.running && options.vrrp?.keepalived === 'external') {
    problems.push('keepalived not running (KEEPALIVED=external: its service should run it)');
  }
  if (vrrp.role === 'MASTER' && !vrrp.holder) problems.push('keepalived reports MASTER but the address is missing');
  if ((vrrp.role === 'BACKUP' || vrrp.role === 'FAULT') && vrrp.holder) problems.push(`keepalived reports ${vrrp.role} but the address is here`);
  return problems;
}

export function buildStatus(ips: readonly string[], state: GatewayState, actions: readonly Action[], options: GatewaySettings, rules: RulesState): GatewayStatus {
  const problems = actions.filter((action) => action.scope === undefined).map((action) => action.reason);
  const keyProblem = hostKeyProblem(options, state);
  if (keyProblem) problems.push(keyProblem);
  if (options.vrrp && advertSourceOf(state.hostLinks, options.network.nic) === undefined) {
    problems.push(`${options.network.nic} has no IPv4 address: VRRP adverts need one as their source, so keepalived cannot take part`);
  }
  const ipStatuses = ips.map((ip): IpStatus => {
    const names = namesFor(ip, options.placement);
    const observed = state.ips[ip];
    const device: LinkState | undefined = observed?.links.find((link) => link.name === names.device);
    const nat = desiredNat(rules, ip);
    const ipProblems = [...new Set(actions.filter((action) => action.scope === ip).map((action) => action.reason))];
    const holder = device?.addresses.some((address) => address.local === ip) === true;
    const vrrp = options.vrrp && observed ? vrrpStatus(ip, observed, holder) : undefined;
    if (vrrp) ipProblems.push(...vrrpProblems(vrrp, options));
    if (!observed) ipProblems.push('not observed');
    return {
      ip,
      ok: ipProblems.length === 0,
      problems: ipProblems,
      netns: { name: names.netns, present: observed?.netnsExists === true },
      device: { name: names.device, present: device !== undefined, kind: device?.kind, mode: device?.mode, up: device?.up === true },
      addresses: device?.addresses.map((entry) => `${entry.local}/${entry.prefixlen}`) ?? [],
      defaultRoutes: observed?.routes.filter(isDefaultRoute).map((entry) => `via ${entry.gateway ?? '-'} dev ${entry.dev ?? '-'}${hasQuickack(entry) ? ' quickack' : ''}`) ?? [],
      routes: { total: observed?.routes.length ?? 0, quickack: observed?.routes.filter((entry) => hasQuickack(entry)).length ?? 0 },
      sshd: {
        running: observed?.sshd.running === true,
        pid: observed?.sshd.running ? observed.sshd.pid : undefined,
        stalePidFile: observed?.sshd.pidFileExists === true && !observed.sshd.running,
        config: observed?.config === undefined ? undefined : names.configFile,
      },
      nat: {
        live: observed?.nat.rules.length ?? 0,
        wanted: nat?.length,
        inSync: nat === undefined || !observed ? undefined : natTableMatches(observed.nat, nat),
      },
      vrrp,
    };
  });
  const failover = options.vrrp
    ? { keepalived: options.vrrp.keepalived, priority: options.vrrp.priority, preempt: options.vrrp.preempt, advertIntervalS: options.vrrp.advertIntervalS }
    : undefined;
  const leftovers = state.managed.filter((managed) => !ips.includes(managed.ip));
  return {
    // An IP still set up but no longer listed is wrong too: the next cycle tears it down.
    ok: problems.length === 0 && rules.kind !== 'invalid' && ipStatuses.every((entry) => entry.ok) && leftovers.length === 0,
    rulesFile: { path: options.rulesFile, state: rules.kind, reason: rules.kind === 'invalid' ? rules.reason : undefined },
    failover,
    problems,
    ips: ipStatuses,
    leftovers,
  };
}

const ROLE_TEXT: Record<Role, string> = {
  MASTER: 'holds the address',
  BACKUP: 'standby',
  FAULT: 'a link is down, cannot hold the address',
  STOP: 'keepalived stopping',
  DELETED: 'instance removed from keepalived',
  down: 'keepalived not running',
  starting: 'keepalived started, no role announced yet',
};

function vrrpLine(vrrp: VrrpStatus): string {
  const facts = [`router id ${vrrp.routerId}`, ...(vrrp.priority === undefined ? [] : [`priority ${vrrp.priority}`]), ...(vrrp.since ? [`since ${vrrp.since}`] : [])];
  const keepalived = vrrp.keepalived.running ? `; keepalived pid ${vrrp.keepalived.pid}` : '';
  const role = vrrp.role === 'down' || vrrp.role === 'starting' ? '' : `${vrrp.role}: `;
  return `vrrp     ${role}${ROLE_TEXT[vrrp.role]} (${facts.join(', ')})${keepalived}`;
}

function ipLines(entry: IpStatus, rules: RulesState['kind']): string[] {
  const device = entry.device.present ? `${entry.device.kind ?? '?'} ${entry.device.mode ?? ''} ${entry.device.up ? 'up' : 'down'}`.replace(/\s+/g, ' ') : 'missing';
  const natText =
    entry.nat.wanted === undefined
      ? `${entry.nat.live} rule(s); rules file ${rules === 'absent' ? 'absent' : 'unusable'}`
      : `${entry.nat.live} rule(s), ${entry.nat.inSync ? 'as in the rules file' : `rules file wants ${entry.nat.wanted}`}`;
  const sshd = entry.sshd.running ? `running, pid ${entry.sshd.pid}` : entry.sshd.stalePidFile ? 'not running (stale pid file)' : 'not running';
  return [
    `netns    ${entry.netns.name}: ${entry.netns.present ? 'present' : 'missing'}`,
    `device   ${entry.device.name}: ${device}`,
    `address  ${entry.addresses.join(', ') || 'none'}`,
    `route    default ${entry.defaultRoutes.join(', ') || 'none'}`,
    `routes   ${entry.routes.total}, ${entry.routes.quickack} with quickack`,
    `sshd     ${sshd}; config ${entry.sshd.config ?? 'missing'}`,
    `nat      ${natText}`,
    ...(entry.vrrp ? [vrrpLine(entry.vrrp)] : []),
  ];
}

export function renderStatus(status: GatewayStatus): string {
  const { rulesFile } = status;
  const lines: string[] = [];
  const rulesLine = rulesFile.state === 'ok' ? `${rulesFile.path}: ok` : rulesFile.state === 'absent' ? `${rulesFile.path}: absent (no rules yet)` : `WRONG: ${rulesFile.reason}`;
  lines.push(`rules file  ${rulesLine}`);
  if (status.failover) {
    const { failover } = status;
    lines.push(
      `failover    keepalived (${failover.keepalived}), priority ${failover.priority}, ${failover.preempt ? 'preempt' : 'nopreempt'}, advert every ${failover.advertIntervalS} s`,
    );
  }
  for (const problem of status.problems) lines.push(`WRONG: ${problem}`);
  for (const entry of status.ips) {
    lines.push('', `${entry.ip}: ${entry.ok ? 'ok' : `${entry.problems.length} problem(s)`}`);
    for (const fact of ipLines(entry, rulesFile.state)) lines.push(`  ${fact}`);
    for (const problem of entry.problems) lines.push(`  WRONG: ${problem}`);
  }
  for (const leftover of status.leftovers) {
    lines.push('', `${leftover.ip}: still set up (netns ${leftover.netns}) but not listed; the gateway will tear it down`);
  }
  return `${lines.join('\n')}\n`;
}

/** Prints the status; the exit code is 2 when the rules file is invalid, else 1 when anything is wrong. */
export async function showGatewayStatus(options: GatewaySettings, output: { write(text: string): unknown }, format: 'text' | 'json' = 'text'): Promise<ExitCode> {
  const ips = readGatewayIps(options);
  const rules = readRulesFile(options.rulesFile);
  const state = await observe(ips, { ...options.placement, hostKeyDir: options.hostKeyDir, privsepDir: PRIVSEP_DIR, failover: options.vrrp !== undefined });
  const actions = plan(buildDesired(options, ips, rules), state);
  const status = buildStatus(ips, state, actions, options, rules);
  output.write(format === 'json' ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
  return rules.kind === 'invalid' ? EXIT.badInput : status.ok ? EXIT.ok : EXIT.failed;
}
