import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { run } from '../lib/exec.js';
import { parseIptablesSave, type NatRule } from '../lib/iptables.js';
import { isIPv4 } from '../lib/ipv4.js';
import { parseRoutesJson, ROUTE_SHOW_ARGS, type Route } from '../lib/routes.js';
import { startedWithConfig, parseLinks, parseNetnsList, type LinkState } from './ip-json.js';
import { CONFIG_FILE_PATTERN, generatedHostKeyPath, namesFor, vrrpStateDir, type IpNames, type Placement } from './names.js';
import type { SessionProcess } from './plan.js';
import { bootTimeMs, parseProcStat, ticksToMs } from './proc.js';
import { parseConfigHeader } from './sshd-config.js';
import type { Announcement, KeepalivedState } from './vrrp.js';
import { announcementFiles, readAnnouncements } from './vrrp-state.js';

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
  /** Children of the listening sshd: one per ssh connection. */
  sessions?: SessionProcess[] | undefined;
  keepalived?: KeepalivedState | undefined;
  keepalivedConfig?: string | undefined;
  /** The newest role keepalived announced for this IP, and every file recording one. */
  announced?: Announcement | undefined;
  announcementFiles?: string[] | undefined;
  /** The namespace's sysctls that failover needs (observed with failover only). */
  sysctl?: NamespaceSysctl | undefined;
}

export interface NamespaceSysctl {
  /** net.ipv4.ip_nonlocal_bind: the standby's sshd listens on an address it does not hold yet. */
  nonlocalBind: boolean;
  /**
   * IPv6 off on every device (all and default): a standby's macvlan, which has the holder's MAC,
   * must send nothing (no IPv6 address configuration), or the LAN's switches would send the
   * holder's traffic to the standby.
   */
  ipv6Off: boolean;
}

/** An IP this gateway set up earlier (found by the config file it wrote into the run dir). */
export interface ManagedIp {
  ip: string;
  netns: string;
}

export interface GatewayState {
  /** The host namespace's links with their addresses. */
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
  /** Also read what failover needs from each namespace (its sysctls). */
  failover?: boolean | undefined;
}

export const PRIVSEP_DIR = '/run/sshd';

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export function listManaged(runDir: string): ManagedIp[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(runDir);
  } catch {
    return [];
  }
  return entries
    .filter((entry) => CONFIG_FILE_PATTERN.test(entry))
    .sort()
    .map((entry) => parseConfigHeader(readText(path.join(runDir, entry)) ?? ''))
    .filter((header): header is ManagedIp => header !== undefined && isIPv4(header.ip));
}

export function listHostKeys(dir: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .filter((entry) => /^ssh_host_\w+_key$/.test(entry) && entries.includes(`${entry}.pub`))
    .sort()
    .map((entry) => path.join(dir, entry));
}

export function observeSshd(names: IpNames): IpState['sshd'] {
  const text = readText(names.pidFile);
  if (text === undefined) return { pidFileExists: false, running: false };
  const pid = /^\s*(\d+)\s*$/.test(text) ? Number(text.trim()) : undefined;
  if (pid === undefined || pid <= 1) return { pidFileExists: true, running: false };
  const cmdline = readText(`/proc/${pid}/cmdline`);
  return { pidFileExists: true, pid, running: cmdline !== undefined && startedWithConfig(cmdline, names.configFile) };
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
 * When each process started (ms since the epoch), by the boot-time clock (/proc/stat's btime plus
 * the start ticks): the clock of keepalived's notify records (see vrrp-state.ts), so that a start
 * and a record are ordered alike, whatever the rounding of btime.
 */
export function processStartedByBootClock(pids: readonly number[]): Record<number, number> {
  const bootMs = bootTimeMs(readText('/proc/stat') ?? '');
  const started: Record<number, number> = {};
  if (bootMs === undefined) return started;
  for (const pid of pids) {
    const stat = parseProcStat(readText(`/proc/${pid}/stat`) ?? '');
    if (stat) started[pid] = ticksToMs(bootMs, stat.startTicks);
  }
  return started;
}

/** The children of `listener` among `pids` (the ssh sessions), with start times by the boot-time clock. */
function sessionsOf(listener: number, pids: readonly number[]): SessionProcess[] {
  const started = processStartedByBootClock(pids);
  return pids.flatMap((pid) => {
    const parentPid = parseProcStat(readText(`/proc/${pid}/stat`) ?? '')?.ppid;
    const startedAtMs = started[pid];
    return parentPid === listener && startedAtMs !== undefined ? [{ pid, parentPid, startedAtMs }] : [];
  });
}

/**
 * The processes in a netns, when each started and its parent: read after an sshd reload has
 * taken effect, to find the sessions that connected under the previous config (see
 * planStaleSessions).
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

/** keepalived for one IP: its pid file, whether that process runs with this IP's config, and its VRRP child. */
export function observeKeepalived(names: IpNames): KeepalivedState {
  const pid = readPid(names.keepalivedPidFile);
  if (pid === undefined) return { pidFileExists: fs.existsSync(names.keepalivedPidFile), running: false };
  const cmdline = readText(`/proc/${pid}/cmdline`);
  // A zombie's cmdline is empty.
  const running = cmdline !== undefined && startedWithConfig(cmdline, names.keepalivedConfig);
  if (!running) return { pidFileExists: true, pid, running };
  const vrrpPid = readPid(names.keepalivedVrrpPidFile);
  const vrrpCmdline = vrrpPid === undefined ? undefined : readText(`/proc/${vrrpPid}/cmdline`);
  return {
    pidFileExists: true,
    pid,
    running,
    startedAtMs: processStartedByBootClock([pid])[pid],
    vrrpPid: vrrpCmdline !== undefined && startedWithConfig(vrrpCmdline, names.keepalivedConfig) ? vrrpPid : undefined,
  };
}

function readPid(file: string): number | undefined {
  const text = readText(file);
  return text !== undefined && /^\s*\d+\s*$/.test(text) && Number(text) > 1 ? Number(text) : undefined;
}

/** `sysctl` output lines ("key = value"); keys the kernel lacks (no IPv6) are simply absent. */
export function parseNamespaceSysctl(text: string): NamespaceSysctl {
  const values = new Map(text.split('\n').map((line) => line.split(' = ').map((part) => part.trim()) as [string, string]));
  const off = (key: string): boolean => (values.get(key) ?? '1') === '1';
  return {
    nonlocalBind: values.get('net.ipv4.ip_nonlocal_bind') === '1',
    ipv6Off: off('net.ipv6.conf.all.disable_ipv6') && off('net.ipv6.conf.default.disable_ipv6'),
  };
}

export const FAILOVER_SYSCTLS = ['net.ipv4.ip_nonlocal_bind', 'net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.default.disable_ipv6'] as const;

/** The daemons (sshd and keepalived with its VRRP child) that run for these IPs now: pid files and /proc only. */
export function runningDaemons(ips: readonly string[], placement: Placement): number[] {
  return ips.flatMap((ip) => {
    const names = namesFor(ip, placement);
    const sshd = observeSshd(names);
    const keepalived = observeKeepalived(names);
    return [
      ...(sshd.running && sshd.pid !== undefined ? [sshd.pid] : []),
      ...(keepalived.running && keepalived.pid !== undefined ? [keepalived.pid] : []),
      ...(keepalived.vrrpPid !== undefined ? [keepalived.vrrpPid] : []),
    ];
  });
}

/**
 * The addresses on the macvlan of each IP whose keepalived is not running: the one thing a
 * failover node must repair before anything else (see planRelease). Cheap: file reads, and one
 * `ip` per such IP.
 */
export async function observeUnvouched(ips: readonly string[], placement: Placement, signal?: AbortSignal): Promise<{ names: IpNames; addresses: LinkState['addresses'] }[]> {
  const unvouched = ips.map((ip) => namesFor(ip, placement)).filter((names) => !observeKeepalived(names).running);
  return Promise.all(
    unvouched.map(async (names) => {
      const shown = await run('ip', ['-n', names.netns, '-json', 'address', 'show', 'dev', names.device], { reject: false, signal });
      return { names, addresses: shown.ok ? (parseLinks(shown.stdout)[0]?.addresses ?? []) : [] };
    }),
  );
}

async function observeIp(
  names: IpNames,
  netnsExists: boolean,
  vrrp: { announced?: Announcement | undefined; files: string[]; failover: boolean },
  signal?: AbortSignal,
): Promise<IpState> {
  const base = {
    sshd: observeSshd(names),
    config: readText(names.configFile),
    configWrittenAtMs: modifiedAtMs(names.configFile),
    keepalived: observeKeepalived(names),
    keepalivedConfig: readText(names.keepalivedConfig),
    announced: vrrp.announced,
    announcementFiles: vrrp.files,
  };
  if (!netnsExists) return { ...base, netnsExists, links: [], routes: [], pids: [], sessions: [], nat: { rules: [], chains: [] } };
  const [links, routes, save, pids, sysctl] = await Promise.all([
    run('ip', ['-n', names.netns, '-json', '-details', 'address', 'show'], { signal }),
    run('ip', ['-n', names.netns, ...ROUTE_SHOW_ARGS], { signal }),
    run('ip', ['netns', 'exec', names.netns, 'iptables-save', '-t', 'nat'], { signal }),
    run('ip', ['netns', 'pids', names.netns], { signal }),
    vrrp.failover ? run('ip', ['netns', 'exec', names.netns, 'sysctl', '-e', ...FAILOVER_SYSCTLS], { signal }) : undefined,
  ]);
  const pidList = parsePidList(pids.stdout);
  const listener = base.sshd.running ? base.sshd.pid : undefined;
  return {
    ...base,
    netnsExists,
    links: parseLinks(links.stdout),
    routes: parseRoutesJson(routes.stdout),
    pids: pidList,
    sessions: listener === undefined ? [] : sessionsOf(listener, pidList),
    nat: parseIptablesSave(save.stdout),
    sysctl: sysctl === undefined ? undefined : parseNamespaceSysctl(sysctl.stdout),
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
    run('ip', ['-json', '-details', 'address', 'show'], { signal }),
  ]);
  const namespaces = new Set(parseNetnsList(netnsList.stdout));
  const managed = listManaged(options.runDir);
  const all = [...new Set([...ips, ...managed.map((entry) => entry.ip)])];
  const stateDir = vrrpStateDir(options.runDir);
  const announcements = readAnnouncements(stateDir, bootTimeMs(readText('/proc/stat') ?? '') ?? 0);
  const states = await Promise.all(
    all.map((ip) => {
      const names = namesFor(ip, options);
      const header = managed.find((entry) => entry.ip === ip && !ips.includes(ip));
      const netns = header?.netns ?? names.netns;
      const vrrp = { announced: announcements[names.hex], files: announcementFiles(stateDir, names.hex), failover: options.failover === true };
      return observeIp({ ...names, netns }, namespaces.has(netns), vrrp, signal);
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
