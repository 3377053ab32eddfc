import path from 'node:path';
import type { Action } from '../lib/action.js';
import { natRestoreInput, natTableMatches, type NatRule } from '../lib/iptables.js';
import { killArgv } from '../lib/process.js';
import { describeRoute, hasQuickack, planQuickack, quickackBatch, routeKey, type Route } from '../lib/routes.js';
import { natRules, type RulesDocument } from '../lib/rules.js';
import type { LinkState } from './ip-json.js';
import { generatedHostKeyPath, namesFor, type IpNames, type Placement } from './names.js';
import type { GatewayState, IpState } from './observe.js';
import type { RulesState } from './rules-file.js';
import { permitsByHost, permitsInConfig, renderSshdConfig, type Permits, type SshdAccess } from './sshd-config.js';
import { renderKeepalivedConfig, roleOf, type VrrpSettings } from './vrrp.js';

/**
 * The pure heart of the gateway: from what should be (desired) and what is (observed) to the
 * commands that close the gap, in order. Nothing here reads or changes the system, so every
 * repair case is a table row in the unit tests. A second run with nothing changed plans [].
 */

/**
 * A reload that needs a second look once it has taken effect: the ssh sessions of this IP's sshd
 * that connected since `sinceMs` (when the previous config was written) got the previous config.
 * See widensPermitOpen.
 */
export interface SessionCheck {
  ip: string;
  netns: string;
  /** The listening sshd, which stays. */
  listenerPid: number;
  /** Its pid file, which it writes again once it runs with the new config. */
  pidFile: string;
  sinceMs: number;
}

export interface GatewayPlan {
  actions: Action[];
  sessionChecks: SessionCheck[];
}

export interface Network {
  nic: string;
  prefixLength: number;
  defaultGateway: string;
}

export interface Desired {
  ips: readonly string[];
  placement: Placement;
  network: Network;
  sshdPath: string;
  access: Omit<SshdAccess, 'hostKeys'>;
  rules: RulesState;
  privsepDir: string;
  /** quickack on every route of each IP's namespace (see lib/routes.ts). */
  quickack: boolean;
  /** Failover on keepalived; undefined: this node alone holds its IPs. */
  vrrp?: VrrpSettings | undefined;
}

function run(ip: string | undefined, reason: string, argv: string[], input?: string): Action {
  return { reason, argv, input, scope: ip };
}

function stopProcesses(ip: string, reason: string, pids: readonly number[]): Action {
  return { reason, argv: killArgv(pids), stops: [...pids], scope: ip };
}

/**
 * What a rules document asks of each gateway IP, worked out once per document and kept with it
 * (until the document is dropped): the permits of every IP from one pass over all tunnel lines
 * (permitsByHost), and each IP's nat rules parsed once, however often a cycle asks (the permits
 * first, then the full plan; status). A RulesDocument is never changed once read: each read of
 * the rules file makes a new one.
 */
interface PerIpRules {
  permits?: Map<string, Permits> | undefined;
  nat: Map<string, readonly NatRule[]>;
}

const perIpRules = new WeakMap<RulesDocument, PerIpRules>();

function perIpRulesOf(rules: RulesDocument): PerIpRules {
  let entry = perIpRules.get(rules);
  if (entry === undefined) {
    entry = { nat: new Map() };
    perIpRules.set(rules, entry);
  }
  return entry;
}

export function desiredNat(rules: RulesState, ip: string): NatRule[] | undefined {
  if (rules.kind !== 'ok') return undefined;
  const { nat } = perIpRulesOf(rules.rules);
  let wanted = nat.get(ip);
  if (wanted === undefined) {
    wanted = natRules(rules.rules.gateway[ip]?.['iptables-rule']);
    nat.set(ip, wanted);
  }
  return [...wanted];
}

/** The host keys the sshd configs name: the host's own, or the one generated into the run dir. */
export function hostKeysFor(state: GatewayState, runDir: string): string[] {
  return state.hostKeys.length > 0 ? state.hostKeys : [generatedHostKeyPath(runDir)];
}

export function desiredPermits(rules: RulesState, ip: string, config: string | undefined): Permits {
  if (rules.kind === 'ok') {
    const entry = perIpRulesOf(rules.rules);
    entry.permits ??= permitsByHost(rules.rules);
    const permits = entry.permits.get(ip);
    return { open: [...(permits?.open ?? [])], listen: [...(permits?.listen ?? [])] };
  }
  // No readable rules: keep what the running sshd already permits.
  return config === undefined ? { open: [], listen: [] } : permitsInConfig(config);
}

/** The actions of one cycle. */
export function plan(desired: Desired, state: GatewayState): Action[] {
  return planGateway(desired, state).actions;
}

/**
 * The first step of a cycle, before everything else is observed: the sshds that run get the
 * config the rules need, and are reloaded. A forwarder that received the same rules at the same
 * time then finds its new forwards permitted when its ssh connects, in most cases, instead of
 * being refused (-R) or held on the previous config (-L). Planned from observeSshdConfigs (files
 * only); an sshd that does not run is left to the full cycle.
 */
export function planPermitsFirst(desired: Desired, state: GatewayState): GatewayPlan {
  if (desired.rules.kind !== 'ok') return { actions: [], sessionChecks: [] };
  const hostKeys = hostKeysFor(state, desired.placement.runDir);
  const planned = desired.ips
    .map((ip) => ({ names: namesFor(ip, desired.placement), state: state.ips[ip] }))
    .filter((entry): entry is { names: IpNames; state: IpState } => entry.state?.sshd.running === true && entry.state.config !== undefined)
    .map((entry) => planSshdConfig(entry.names, entry.state, desired, hostKeys));
  return { actions: planned.flatMap((entry) => entry.actions), sessionChecks: planned.flatMap((entry) => entry.sessionChecks) };
}

/** The actions of one cycle, and the reloads whose older sessions are looked at once they took effect. */
export function planGateway(desired: Desired, state: GatewayState): GatewayPlan {
  const { placement } = desired;
  const actions: Action[] = [];
  const sessionChecks: SessionCheck[] = [];

  for (const managed of state.managed) {
    if (desired.ips.includes(managed.ip)) continue;
    const names = { ...namesFor(managed.ip, placement), netns: managed.netns };
    actions.push(...planTeardownIp(names, state.ips[managed.ip], state.hostLinks, 'no longer in the IP list'));
  }
  if (desired.ips.length === 0) return { actions, sessionChecks };

  const hostKeys = hostKeysFor(state, placement.runDir);
  // With failover the key must be the same on every node: it is never generated (see hostKeyProblem).
  if (!desired.vrrp && state.hostKeys.length === 0 && !state.generatedHostKeyExists) {
    const key = generatedHostKeyPath(placement.runDir);
    actions.push(
      run(undefined, 'no host key in the host key dir: generating one', ['mkdir', '-p', '-m', '0700', path.dirname(key)]),
      run(undefined, 'no host key in the host key dir: generating one', ['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'k8s-ext-connector-gateway', '-f', key]),
    );
  }
  if (!state.privsepDirExists) {
    actions.push(run(undefined, "sshd's privilege separation directory is missing", ['mkdir', '-p', '-m', '0755', desired.privsepDir]));
  }
  const releases: Action[] = [];
  for (const ip of desired.ips) {
    const planned = planIp(namesFor(ip, placement), state.ips[ip], state.hostLinks, desired, hostKeys);
    releases.push(...planned.releases);
    actions.push(...planned.actions);
    sessionChecks.push(...planned.sessionChecks);
  }
  // Addresses no keepalived vouches for go first, for every IP: another node takes them over
  // within seconds.
  return { actions: [...releases, ...actions], sessionChecks };
}

const EMPTY_IP_STATE: IpState = {
  netnsExists: false,
  links: [],
  routes: [],
  pids: [],
  nat: { rules: [], chains: [] },
  sshd: { pidFileExists: false, running: false },
};

function isBridgeMacvlan(link: LinkState | undefined): boolean {
  return link?.kind === 'macvlan' && link.mode === 'bridge';
}

export function planIp(
  names: IpNames,
  observed: IpState | undefined,
  hostLinks: readonly LinkState[],
  desired: Desired,
  hostKeys: readonly string[],
): GatewayPlan & { releases: Action[] } {
  const state = observed ?? EMPTY_IP_STATE;
  const { ip, netns, device } = names;
  const { nic, prefixLength, defaultGateway } = desired.network;
  const { vrrp } = desired;
  const inNs = (reason: string, args: string[], input?: string): Action => run(ip, reason, ['ip', '-n', netns, ...args], input);
  const actions: Action[] = [];
  const sessionChecks: SessionCheck[] = [];
  const releases: Action[] = [];

  if (!state.netnsExists) {
    if (state.sshd.running && state.sshd.pid !== undefined) {
      actions.push(stopProcesses(ip, 'sshd runs in a network namespace that no longer exists', [state.sshd.pid]));
    }
    actions.push(run(ip, 'network namespace missing', ['ip', 'netns', 'add', netns]));
  }
  if (vrrp) {
    // Before any device comes up or sshd starts: the standby's devices stay silent, its sshd binds.
    const sysctl = state.netnsExists ? state.sysctl : undefined;
    if (!sysctl?.nonlocalBind || !sysctl.ipv6Off) {
      actions.push(
        run(ip, 'failover needs ip_nonlocal_bind (sshd listens before the address arrives) and IPv6 off (the standby sends nothing)', [
          'ip', 'netns', 'exec', netns, 'sysctl', '-q', '-e', '-w',
          'net.ipv4.ip_nonlocal_bind=1', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1',
        ]),
      );
    }
  }

  const macvlan = planMacvlan(ip, netns, device, names.mac, nic, state.links, hostLinks);
  actions.push(...macvlan.actions);
  const dev = macvlan.dev;
  const vrrpDevice = vrrp ? planMacvlan(ip, netns, names.vrrpDevice, undefined, nic, state.links, hostLinks) : undefined;
  actions.push(...(vrrpDevice?.actions ?? []));

  const loWasUp = state.links.find((link) => link.name === 'lo')?.up === true;
  if (!loWasUp) actions.push(inNs('lo is down', ['link', 'set', 'lo', 'up']));
  const deviceWasUp = dev?.up === true;
  if (!deviceWasUp) actions.push(inNs(`${device} is down`, ['link', 'set', device, 'up']));
  if (vrrpDevice && !vrrpDevice.dev?.up) actions.push(inNs(`${names.vrrpDevice} is down`, ['link', 'set', names.vrrpDevice, 'up']));

  // A device that is new here has no addresses or routes yet, whatever was observed.
  const addresses = dev?.addresses ?? [];
  const isOurs = (address: { local: string; prefixlen: number }): boolean => address.local === ip && address.prefixlen === prefixLength;
  let addressChanged = false;
  for (const address of addresses) {
    if (isOurs(address)) continue;
    actions.push(inNs(`unexpected address ${address.local}/${address.prefixlen}`, ['address', 'del', `${address.local}/${address.prefixlen}`, 'dev', device]));
    addressChanged = true;
  }
  // With failover, keepalived adds and removes the address and the default route with it: the
  // gateway only gives up an address no running keepalived vouches for (see planRelease).
  const keepalivedRuns = state.keepalived?.running === true;
  if (vrrp) releases.push(...planRelease(names, addresses, keepalivedRuns, prefixLength));
  const holds = addresses.some(isOurs) && (!vrrp || keepalivedRuns);
  const addressAdded = !vrrp && !addresses.some(isOurs);
  if (addressAdded) {
    actions.push(inNs(`address ${ip}/${prefixLength} missing`, ['address', 'add', `${ip}/${prefixLength}`, 'dev', device]));
    addressChanged = true;
  }

  // A device that is new here has no routes yet, and one that gives its address up loses them;
  // the other routes of the netns (lo's) stay.
  const keepsDeviceRoutes = dev !== undefined && (!vrrp || holds);
  const liveRoutes = state.netnsExists ? state.routes.filter((route) => keepsDeviceRoutes || route.dev !== device) : [];
  const defaults = liveRoutes.filter(isDefaultRoute);
  const ours = (route: Route): boolean => route.gateway === defaultGateway && route.dev === device;
  for (const route of defaults) {
    if (ours(route)) continue;
    const spec = [...(route.gateway ? ['via', route.gateway] : []), ...(route.dev ? ['dev', route.dev] : [])];
    actions.push(inNs(`unexpected default route ${spec.join(' ')}`, ['route', 'del', 'default', ...spec]));
  }
  const quickack = desired.quickack ? ['quickack', '1'] : [];
  const defaultRoute = ['route', 'replace', 'default', 'via', defaultGateway, 'dev', device, ...quickack];
  if (vrrp) {
    // keepalived's (virtual_routes, with quickack when it is on).
  } else if (addressChanged || !defaults.some(ours)) {
    // replace, not add: removing a wrong address may or may not have taken the route with it.
    actions.push(inNs(`default route via ${defaultGateway} missing`, defaultRoute));
  } else if (desired.quickack && !defaults.some((route) => ours(route) && hasQuickack(route))) {
    actions.push(inNs('default route lacks quickack', defaultRoute));
  }
  if (desired.quickack) {
    const removed = new Set(addresses.filter((address) => !isOurs(address)).map((address) => address.local));
    const made = kernelRoutes(names, prefixLength, { loUp: !loWasUp, deviceUp: !deviceWasUp && (!vrrp || holds), addressAdded });
    const madeKeys = new Set(made.map(routeKey));
    const routes = [
      ...liveRoutes.filter((route) => !isDefaultRoute(route) && !madeKeys.has(routeKey(route)) && !(route.prefsrc !== undefined && removed.has(route.prefsrc))),
      ...made,
    ];
    const { changes } = planQuickack(routes);
    if (changes.length > 0) {
      const which = changes.map((change) => describeRoute(change.route)).join(', ');
      actions.push(inNs(`${changes.length} route(s) lack quickack: ${which}`, ['-batch', '-'], quickackBatch(changes)));
    }
  }

  const nat = desiredNat(desired.rules, ip);
  const liveNat = state.netnsExists ? state.nat : { rules: [], chains: [] };
  if (nat !== undefined && !natTableMatches(liveNat, nat)) {
    actions.push(
      run(ip, `nat table differs from the rules file (${liveNat.rules.length} live, ${nat.length} wanted)`, ['ip', 'netns', 'exec', netns, 'iptables-restore'], natRestoreInput(nat)),
    );
  }

  const sshd = planSshdConfig(names, state, desired, hostKeys);
  actions.push(...sshd.actions);
  sessionChecks.push(...sshd.sessionChecks);

  if (vrrp) {
    actions.push(...planKeepalived(names, state, hostLinks, desired, vrrp));
    actions.push(...planLeftoverSessions(names, state, holds));
  } else if (state.keepalived?.running) {
    actions.push(...planStopKeepalived(names, state, 'failover is off'));
  }
  return { actions, sessionChecks, releases };
}

/**
 * The sshd of one IP: its config written when it differs from what the rules need (checked with
 * sshd -t first), then sshd started, or reloaded with SIGHUP when it runs.
 */
export function planSshdConfig(names: IpNames, state: IpState, desired: Desired, hostKeys: readonly string[]): GatewayPlan {
  const { ip, netns } = names;
  const actions: Action[] = [];
  const sessionChecks: SessionCheck[] = [];
  const permits = desiredPermits(desired.rules, ip, state.config);
  const config = renderSshdConfig(names, { ...desired.access, hostKeys }, permits);
  const configChanged = state.config !== config;
  if (configChanged) {
    actions.push({
      reason: state.config === undefined ? 'sshd config missing' : 'sshd config differs from what the rules need',
      argv: [desired.sshdPath, '-t', '-f'],
      writesFile: { path: names.configFile, content: config },
      scope: ip,
    });
  }
  const sshdRunsHere = state.sshd.running && state.netnsExists;
  if (!sshdRunsHere) {
    const why = state.sshd.pidFileExists && !state.sshd.running ? 'sshd not running (stale pid file)' : 'sshd not running';
    actions.push(run(ip, why, ['ip', 'netns', 'exec', netns, desired.sshdPath, '-f', names.configFile]));
  } else if (configChanged && state.sshd.pid !== undefined) {
    // SIGHUP makes sshd re-execute itself and read the new config; tunnels that are up stay up.
    actions.push(run(ip, 'sshd config changed: reloading sshd', ['kill', '-HUP', String(state.sshd.pid)]));
    if (widensPermitOpen(state, permits) && state.configWrittenAtMs !== undefined) {
      sessionChecks.push({ ip, netns, listenerPid: state.sshd.pid, pidFile: names.pidFile, sinceMs: state.configWrittenAtMs });
    }
  }
  return { actions, sessionChecks };
}

export function isDefaultRoute(route: Route): boolean {
  return route.table === 'main' && route.type === 'unicast' && route.dst === 'default';
}

/**
 * The routes the kernel makes, in this cycle, for actions planned before the routes could be
 * observed: the loopback routes when lo comes up, the route to the IP's subnet when the device
 * comes up or the address is added, and the local route of the IP when the address is added (a
 * device that goes down keeps it). Planning quickack for them now makes the next cycle find
 * nothing to do.
 */
export function kernelRoutes(names: IpNames, prefixLength: number, made: { loUp: boolean; deviceUp: boolean; addressAdded: boolean }): Route[] {
  const route = (table: string, type: string, dst: string, dev: string, scope: string, prefsrc: string): Route => ({
    table,
    type,
    dst,
    dev,
    protocol: 'kernel',
    scope,
    prefsrc,
    onlink: false,
    metrics: {},
  });
  const routes: Route[] = [];
  if ((made.addressAdded || made.deviceUp) && prefixLength < 32) {
    routes.push(route('main', 'unicast', `${networkOf(names.ip, prefixLength)}/${prefixLength}`, names.device, 'link', names.ip));
  }
  if (made.addressAdded) routes.push(route('local', 'local', names.ip, names.device, 'host', names.ip));
  if (made.loUp) routes.push(route('local', 'local', '127.0.0.0/8', 'lo', 'host', '127.0.0.1'), route('local', 'local', '127.0.0.1', 'lo', 'host', '127.0.0.1'));
  return routes;
}

/** 192.168.122.200 with /24 -> 192.168.122.0 */
export function networkOf(ip: string, prefixLength: number): string {
  const value = ip.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  const network = (value & mask) >>> 0;
  return [24, 16, 8, 0].map((shift) => (network >>> shift) & 255).join('.');
}

/**
 * With failover, keepalived adds the address when this node becomes the holder and removes it
 * when it stops being one; the gateway never adds it. Without a running keepalived nothing would
 * remove it when another node takes the IP over, so it goes at once (before any other action).
 */
export function planRelease(names: IpNames, addresses: readonly { local: string; prefixlen: number }[], keepalivedRuns: boolean, prefixLength: number): Action[] {
  if (keepalivedRuns) return [];
  return addresses
    .filter((address) => address.local === names.ip && address.prefixlen === prefixLength)
    .map((address) => ({
      reason: `keepalived is not running for ${names.ip}: no node may hold the address unannounced`,
      argv: ['ip', '-n', names.netns, 'address', 'del', `${address.local}/${address.prefixlen}`, 'dev', names.device],
      scope: names.ip,
      // The releases of all IPs run at once.
      parallel: true,
    }));
}

/**
 * A bridge-mode macvlan on the NIC inside the IP's namespace: moved back in when it was left in
 * the host namespace, re-created when it is of the wrong kind. `mac` fixes its MAC.
 */
function planMacvlan(
  ip: string,
  netns: string,
  device: string,
  mac: string | undefined,
  nic: string,
  links: readonly LinkState[],
  hostLinks: readonly LinkState[],
): { actions: Action[]; dev: LinkState | undefined } {
  const actions: Action[] = [];
  let dev = links.find((link) => link.name === device);
  if (dev && !isBridgeMacvlan(dev)) {
    actions.push(run(ip, `${device} is not a bridge-mode macvlan`, ['ip', '-n', netns, 'link', 'del', device]));
    dev = undefined;
  }
  if (!dev) {
    const onHost = hostLinks.find((link) => link.name === device);
    if (isBridgeMacvlan(onHost)) {
      actions.push(run(ip, `${device} was left in the host namespace`, ['ip', 'link', 'set', device, 'netns', netns]));
    } else {
      if (onHost) actions.push(run(ip, `${device} in the host namespace is not a bridge-mode macvlan`, ['ip', 'link', 'del', device]));
      actions.push(
        run(ip, `${device} missing`, ['ip', 'link', 'add', device, 'link', nic, ...(mac ? ['address', mac] : []), 'type', 'macvlan', 'mode', 'bridge']),
        run(ip, `${device} missing`, ['ip', 'link', 'set', device, 'netns', netns]),
      );
    }
  }
  return { actions, dev };
}

/** The NIC's first IPv4 address: the source of this node's VRRP adverts. */
export function advertSourceOf(hostLinks: readonly LinkState[], nic: string): string | undefined {
  return hostLinks.find((link) => link.name === nic)?.addresses[0]?.local;
}

/** The keepalived config of one IP on this node. */
export function keepalivedConfigFor(names: IpNames, network: Network, hostLinks: readonly LinkState[], vrrp: VrrpSettings, quickack: boolean): string {
  return renderKeepalivedConfig({
    names,
    prefixLength: network.prefixLength,
    defaultGateway: network.defaultGateway,
    advertSource: advertSourceOf(hostLinks, network.nic),
    quickack,
    settings: vrrp,
  });
}

/** keepalived's config for the IP, written and checked, and keepalived running it (when the gateway manages it). */
function planKeepalived(names: IpNames, state: IpState, hostLinks: readonly LinkState[], desired: Desired, vrrp: VrrpSettings): Action[] {
  const { ip, netns } = names;
  const actions: Action[] = [];
  const config = keepalivedConfigFor(names, desired.network, hostLinks, vrrp, desired.quickack);
  const keepalived = state.keepalived;
  const changed = state.keepalivedConfig !== config;
  if (changed) {
    actions.push({
      reason: state.keepalivedConfig === undefined ? 'keepalived config missing' : 'keepalived config differs from the settings',
      // Checked inside the namespace, where its devices are.
      argv: ['ip', 'netns', 'exec', netns, 'keepalived', '-t', '-f'],
      writesFile: { path: names.keepalivedConfig, content: config },
      scope: ip,
    });
  }
  if (keepalived?.running && keepalived.pid !== undefined) {
    if (changed) actions.push(run(ip, 'keepalived config changed: reloading keepalived', ['kill', '-HUP', String(keepalived.pid)]));
    return actions;
  }
  if (vrrp.keepalived === 'external') return actions;
  if (keepalived?.pidFileExists) {
    // keepalived refuses to start while its pid file names a live process, whatever that is now.
    actions.push(run(ip, 'keepalived not running (stale pid file)', ['rm', '-f', names.keepalivedPidFile, names.keepalivedVrrpPidFile]));
  }
  actions.push({
    reason: 'keepalived not running',
    argv: ['ip', 'netns', 'exec', netns, 'keepalived', '--vrrp', '-f', names.keepalivedConfig, '-p', names.keepalivedPidFile, '-r', names.keepalivedVrrpPidFile],
    scope: ip,
    daemonizes: true,
    waitsForPidFile: names.keepalivedPidFile,
  });
  return actions;
}

/**
 * A node without the address serves no tunnels for it. The ssh sessions that connected while it
 * held the address (before keepalived announced that it no longer does) are ended, so that their
 * -R ports are free again should the address come back here.
 */
function planLeftoverSessions(names: IpNames, state: IpState, holds: boolean): Action[] {
  if (holds) return [];
  const role = roleOf(state.keepalived, state.announced);
  const since = state.announced?.atMs;
  if (role === 'MASTER' || role === 'down' || role === 'starting' || since === undefined) return [];
  const leftover = (state.sessions ?? []).filter((session) => session.startedAtMs < since).map((session) => session.pid);
  if (leftover.length === 0) return [];
  return [stopProcesses(names.ip, `keepalived reports ${role} for ${names.ip}: ending the ${leftover.length} ssh session(s) from when this node held it`, leftover)];
}

/** Stops keepalived and removes its files (failover turned off). */
function planStopKeepalived(names: IpNames, state: IpState, why: string): Action[] {
  const pids = [state.keepalived?.pid, state.keepalived?.vrrpPid].filter((pid): pid is number => pid !== undefined);
  return [
    stopProcesses(names.ip, `${why}: stopping keepalived`, pids),
    run(names.ip, `${why}: removing keepalived files`, ['rm', '-f', names.keepalivedConfig, names.keepalivedPidFile, names.keepalivedVrrpPidFile]),
  ];
}

/**
 * An sshd session keeps the config that was in force when it connected. When the rules add a
 * PermitOpen target, a tunnel that connected after the previous config was written (the
 * forwarder got the new rules before the gateway did) can never open its forward, yet stays up:
 * the sessions opened between the previous config's write and the reload are stopped, so that
 * their tunnels reconnect under the new config. Which sessions those are can only be read once
 * the reload has taken effect (a session accepted until then got the previous config): the cycle
 * then observes the netns's processes and plans their stop with planStaleSessions. Older
 * sessions predate the rules that need the new target and are left alone.
 */
export function widensPermitOpen(state: IpState, permits: Permits): boolean {
  if (state.config === undefined) return false;
  const before = new Set(permitsInConfig(state.config).open);
  return permits.open.some((target) => !before.has(target));
}

/** A process in an IP's netns, its parent, and when it started (ms since the epoch). */
export interface SessionProcess {
  pid: number;
  parentPid: number;
  startedAtMs: number;
}

/**
 * The sessions opened under the previous config: the processes the listening sshd forked (one
 * per connection) from `check.sinceMs` until the reload took effect, and their children. Any other
 * process in the netns (this gateway's own `ip netns exec` commands among them) is no session.
 */
export function selectStaleSessions(check: SessionCheck, processes: readonly SessionProcess[], reloadedAtMs: number): number[] {
  const sessions = new Set(
    processes
      .filter((entry) => entry.parentPid === check.listenerPid && entry.startedAtMs >= check.sinceMs && entry.startedAtMs <= reloadedAtMs)
      .map((entry) => entry.pid),
  );
  const children = processes.filter((entry) => sessions.has(entry.parentPid)).map((entry) => entry.pid);
  return [...sessions, ...children].sort((a, b) => a - b);
}

export function planStaleSessions(check: SessionCheck, processes: readonly SessionProcess[], reloadedAtMs: number): Action[] {
  const stale = selectStaleSessions(check, processes, reloadedAtMs);
  if (stale.length === 0) return [];
  return [
    stopProcesses(
      check.ip,
      `the rules add a forwarding target: stopping ${stale.length} ssh session(s) opened under the previous config, so that their tunnels reconnect`,
      stale,
    ),
  ];
}

/** Removes everything setup made for one IP: its sshd, pid and config files, netns and device. */
export function planTeardownIp(names: IpNames, observed: IpState | undefined, hostLinks: readonly LinkState[], why: string): Action[] {
  const state = observed ?? EMPTY_IP_STATE;
  const actions: Action[] = [];
  // The per-connection sshds outlive the listener and would keep the netns, its device and
  // the IP alive after `ip netns del`: everything in the netns goes.
  const listener = state.sshd.running && state.sshd.pid !== undefined ? [state.sshd.pid] : [];
  const pids = [...new Set([...listener, ...(state.netnsExists ? state.pids : [])])].sort((a, b) => a - b);
  if (pids.length > 0) {
    const others = pids.length - listener.length;
    actions.push(stopProcesses(names.ip, `${why}: stopping sshd${others > 0 ? ` and ${others} other process(es) in its namespace` : ''}`, pids));
  }
  const files = [...(state.sshd.pidFileExists ? [names.pidFile] : []), ...(state.config !== undefined ? [names.configFile] : [])];
  if (files.length > 0) actions.push(run(names.ip, `${why}: removing sshd files`, ['rm', '-f', ...files]));
  const vrrpFiles = [
    ...(state.keepalivedConfig !== undefined ? [names.keepalivedConfig] : []),
    ...(state.keepalived?.pidFileExists ? [names.keepalivedPidFile, names.keepalivedVrrpPidFile] : []),
    ...(state.announcementFiles ?? []),
  ];
  if (vrrpFiles.length > 0) actions.push(run(names.ip, `${why}: removing keepalived files`, ['rm', '-f', ...vrrpFiles]));
  if (state.netnsExists) actions.push(run(names.ip, `${why}: deleting network namespace`, ['ip', 'netns', 'del', names.netns]));
  if (hostLinks.some((link) => link.name === names.device)) {
    actions.push(run(names.ip, `${why}: deleting ${names.device} left in the host namespace`, ['ip', 'link', 'del', names.device]));
  }
  return actions;
}

export function planTeardown(ips: readonly string[], state: GatewayState, placement: Placement): Action[] {
  return ips.flatMap((ip) => planTeardownIp(namesFor(ip, placement), state.ips[ip], state.hostLinks, 'teardown'));
}
