import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { run } from '../lib/exec.js';
import { parseIptablesSave, type NatRule } from '../lib/iptables.js';
import { isIPv4 } from '../lib/ipv4.js';
import { parseRoutesJson, ROUTE_SHOW_ARGS, type Route } from '../lib/routes.js';
import { isSshdFor, parseLinks, parseNetnsList, type LinkState } from './ip-json.js';
import { CONFIG_FILE_PATTERN, generatedHostKeyPath, namesFor, type IpNames, type Placement } from './names.js';
import type { SessionProcess } from './plan.js';
import { parseConfigHeader } from './sshd-config.js';

/** What one IP's pieces look like right now. */
export interface IpState {
  netnsExists: boolean;
  /** Links inside the IP's netns (empty when it does not exist). */
  links: LinkState[];
  /** Every IPv4 route of the netns, of every table. */
  routes: Route[];
  /** Processes in the netns: the sshd and the per-connection sshds that serve the tunnels. */
  pids: number[];
  nat: { rules: NatRule[]; chains: string[] };
  sshd: { pidFileExists: boolean; pid?: number | undefined; running: boolean };
  /** The sshd config file's content, when it exists. */
  config?: string | undefined;
  /** When the sshd config file was last written (ms since the epoch). */
  configWrittenAtMs?: number | undefined;
}

/** An IP this gateway set up earlier (found by the config file it wrote into the run dir). */
export interface ManagedIp {
  ip: string;
  netns: string;
}

export interface GatewayState {
  hostLinks: LinkState[];
  managed: ManagedIp[];
  ips: Record<string, IpState>;
  /** Usable host key files in the host key dir. */
  hostKeys: string[];
  generatedHostKeyExists: boolean;
  privsepDirExists: boolean;
}

export interface ObserveOptions extends Placement {
  /** Where host keys are looked for (not needed by teardown). */
  hostKeyDir?: string | undefined;
  /** sshd's privilege separation directory (compiled into sshd). */
  privsepDir: string;
}

export const PRIVSEP_DIR = '/run/sshd';

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The entries of a directory; none when it cannot be read. */
function entriesOf(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

export function listManaged(runDir: string): ManagedIp[] {
  return entriesOf(runDir)
    .filter((entry) => CONFIG_FILE_PATTERN.test(entry))
    .sort()
    .map((entry) => parseConfigHeader(readText(path.join(runDir, entry)) ?? ''))
    .filter((header): header is ManagedIp => header !== undefined && isIPv4(header.ip));
}

export function listHostKeys(dir: string): string[] {
  const entries = entriesOf(dir);
  return entries
    .filter((entry) => /^ssh_host_\w+_key$/.test(entry) && entries.includes(`${entry}.pub`))
    .sort()
    .map((entry) => path.join(dir, entry));
}

function observeSshd(names: IpNames): IpState['sshd'] {
  const text = readText(names.pidFile);
  if (text === undefined) return { pidFileExists: false, running: false };
  const pid = /^\s*(\d+)\s*$/.test(text) ? Number(text.trim()) : undefined;
  if (pid === undefined || pid <= 1) return { pidFileExists: true, running: false };
  const cmdline = readText(`/proc/${pid}/cmdline`);
  return { pidFileExists: true, pid, running: cmdline !== undefined && isSshdFor(cmdline, names.configFile) };
}

function modifiedAtMs(file: string): number | undefined {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * When a reloaded sshd took its new config into use: after SIGHUP it re-executes itself, reads
 * the config, listens again and only then writes its pid file again, so a pid file written at or
 * after `hupSentAtMs` marks it; connections accepted before that got the previous config. Looks
 * every 10 ms; undefined when that did not happen within `timeoutMs` (sshd did not come back).
 * A file's times come from the kernel's coarse clock, up to a tick behind Date.now().
 */
export async function reloadTookEffectAtMs(pidFile: string, hupSentAtMs: number, timeoutMs: number, signal?: AbortSignal): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const writtenAtMs = modifiedAtMs(pidFile);
    if (writtenAtMs !== undefined && writtenAtMs >= hupSentAtMs - COARSE_CLOCK_MS) return writtenAtMs;
    if (Date.now() > deadline) return undefined;
    await delay(10, undefined, { signal });
  }
}

const COARSE_CLOCK_MS = 10;

/** The pids of `ip netns pids` output. */
export function parsePidList(stdout: string): number[] {
  return stdout
    .split('\n')
    .filter((line) => /^\d+$/.test(line.trim()))
    .map(Number);
}

/**
 * A process's parent and when it started (ms since the epoch), from its /proc/<pid>/stat (field
 * 4, and field 22: clock ticks since boot; USER_HZ is 100 on every architecture Linux supports),
 * the system's uptime (/proc/uptime, same clock) and the time now, read together. /proc/stat's
 * btime is whole seconds, so a start time derived from it is off by up to a second: enough to
 * take a session opened just after a reload for one opened before it, and the other way round.
 */
export function parseProcessStat(pid: number, stat: string, uptime: string, nowMs: number): SessionProcess | undefined {
  // The command name (field 2) may hold spaces and parentheses: count from its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const parentPid = Number(fields[1]);
  const ticks = Number(fields[19]);
  const uptimeSeconds = Number(uptime.split(' ')[0]);
  if (!Number.isInteger(parentPid) || !Number.isFinite(ticks) || !Number.isFinite(uptimeSeconds) || uptime.trim() === '') return undefined;
  return { pid, parentPid, startedAtMs: Math.round(nowMs - (uptimeSeconds * 1000 - ticks * 10)) };
}

/**
 * The processes in a netns and when each started: read after an sshd reload has taken effect,
 * to find the sessions that connected under the previous config (see planStaleSessions).
 */
export async function observeSessions(netns: string, signal?: AbortSignal): Promise<SessionProcess[]> {
  const listed = await run('ip', ['netns', 'pids', netns], { signal });
  const uptime = readText('/proc/uptime') ?? '';
  const nowMs = Date.now();
  return parsePidList(listed.stdout).flatMap((pid) => {
    const stat = readText(`/proc/${pid}/stat`);
    const process = stat === undefined ? undefined : parseProcessStat(pid, stat, uptime, nowMs);
    return process === undefined ? [] : [process];
  });
}

async function observeIp(names: IpNames, netnsExists: boolean, signal?: AbortSignal): Promise<IpState> {
  const base = { sshd: observeSshd(names), config: readText(names.configFile), configWrittenAtMs: modifiedAtMs(names.configFile) };
  if (!netnsExists) return { ...base, netnsExists, links: [], routes: [], pids: [], nat: { rules: [], chains: [] } };
  const [links, routes, save, pids] = await Promise.all([
    run('ip', ['-n', names.netns, '-json', '-details', 'address', 'show'], { signal }),
    run('ip', ['-n', names.netns, ...ROUTE_SHOW_ARGS], { signal }),
    run('ip', ['netns', 'exec', names.netns, 'iptables-save', '-t', 'nat'], { signal }),
    run('ip', ['netns', 'pids', names.netns], { signal }),
  ]);
  const pidList = parsePidList(pids.stdout);
  return {
    ...base,
    netnsExists,
    links: parseLinks(links.stdout),
    routes: parseRoutesJson(routes.stdout),
    pids: pidList,
    nat: parseIptablesSave(save.stdout),
  };
}

/**
 * What the sshd of each listed IP runs with, read from files only (pid file, /proc, config file,
 * host key dir): no program is started, so it takes well under a millisecond. The rest of each
 * IpState is left empty; only planPermitsFirst reads this.
 */
export function observeSshdConfigs(ips: readonly string[], options: ObserveOptions): GatewayState {
  const states = ips.map((ip): IpState => {
    const names = namesFor(ip, options);
    const sshd = observeSshd(names);
    return {
      sshd,
      config: readText(names.configFile),
      configWrittenAtMs: modifiedAtMs(names.configFile),
      netnsExists: sshd.running,
      links: [],
      routes: [],
      pids: [],
      nat: { rules: [], chains: [] },
    };
  });
  return {
    hostLinks: [],
    managed: [],
    ips: Object.fromEntries(ips.map((ip, index) => [ip, states[index] as IpState])),
    hostKeys: options.hostKeyDir === undefined ? [] : listHostKeys(options.hostKeyDir),
    generatedHostKeyExists: fs.existsSync(generatedHostKeyPath(options.runDir)),
    privsepDirExists: fs.existsSync(options.privsepDir),
  };
}

/** Reads everything the plan needs, afresh, for the listed IPs and every IP set up earlier. */
export async function observe(ips: readonly string[], options: ObserveOptions, signal?: AbortSignal): Promise<GatewayState> {
  const [netnsList, hostLinks] = await Promise.all([
    run('ip', ['-json', 'netns', 'list'], { signal }),
    run('ip', ['-json', '-details', 'link', 'show'], { signal }),
  ]);
  const namespaces = new Set(parseNetnsList(netnsList.stdout));
  const managed = listManaged(options.runDir);
  const all = [...new Set([...ips, ...managed.map((entry) => entry.ip)])];
  const states = await Promise.all(
    all.map((ip) => {
      const names = namesFor(ip, options);
      const header = managed.find((entry) => entry.ip === ip && !ips.includes(ip));
      const netns = header?.netns ?? names.netns;
      return observeIp({ ...names, netns }, namespaces.has(netns), signal);
    }),
  );
  return {
    hostLinks: parseLinks(hostLinks.stdout),
    managed,
    ips: Object.fromEntries(all.map((ip, index) => [ip, states[index] as IpState])),
    hostKeys: options.hostKeyDir === undefined ? [] : listHostKeys(options.hostKeyDir),
    generatedHostKeyExists: fs.existsSync(generatedHostKeyPath(options.runDir)),
    privsepDirExists: fs.existsSync(options.privsepDir),
  };
}
