import fs from 'node:fs';
import path from 'node:path';
import { parseLinks } from '../gateway/ip-json.js';
import { ipToHex } from '../lib/ipv4.js';
import { namesFor, vrrpStateDir } from '../gateway/names.js';
import { bootTimeMs } from '../gateway/proc.js';
import { readAnnouncements } from '../gateway/vrrp-state.js';
import type { VrrpState } from '../gateway/vrrp.js';
import { BIN, README_SOURCES, generateRules, prepareConnector, publishRules, startForwarder, type Connector } from './connector.js';
import { PACKAGE_ROOT, waitFor, type Lab, type LabProcess } from './netns.js';
import { ADDRESSES, PODS, SERVICES, buildTopology, httpGet, type Topology } from './topology.js';

/**
 * The failover lab: the end-to-end lab with two gateway nodes on the LAN, both running
 * bin/gateway with failover (one keepalived per IP), the same IPS_CONF, the same rules and the
 * same host key. Node A (192.168.122.192, priority 150) starts first and holds both IPs; node B
 * (192.168.122.193, priority 100) is the standby. The forwarder checks host keys strictly against
 * the one shared key, so a failover that changed the key would break its tunnels.
 */

export interface GatewayNode {
  name: 'A' | 'B';
  /** The node's own (host) network namespace. */
  host: string;
  address: string;
  /** Its port on the LAN bridge: setting it down is the node losing its link. */
  lanPort: string;
  runDir: string;
  netnsPrefix: string;
  priority: number;
  process?: LabProcess | undefined;
}

export interface FailoverLab {
  lab: Lab;
  topology: Topology;
  connector: Connector;
  nodes: { A: GatewayNode; B: GatewayNode };
  hostKeyDir: string;
  key: { privateKey: string; publicKey: string };
  logs: string;
  probes: { podToExternal: Probe; externalToPod: Probe } | undefined;
}

export const FAILOVER_IPS = ADDRESSES.sourceIPs;

export interface NodeSettings {
  preempt?: boolean;
  advertIntervalS?: number;
}

/** Builds the lab with two gateway nodes; nothing runs yet. */
export async function buildFailoverLab(lab: Lab): Promise<FailoverLab> {
  const topology = await buildTopology(lab, { hosts: { gw2: ADDRESSES.standbyHost } });
  const connector = prepareConnector(lab);
  publishRules(connector, await generateRules(connector, README_SOURCES));
  const hostKeyDir = path.join(connector.dir, 'host-keys');
  fs.mkdirSync(hostKeyDir, { mode: 0o700 });
  // One host key for both nodes, as an operator copies it to every gateway node.
  await lab.exec(undefined, ['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'k8s-ext-connector-gateways', '-f', path.join(hostKeyDir, 'ssh_host_ed25519_key')]);
  const logs = path.join(lab.tempDir, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  const node = (name: 'A' | 'B', host: string, address: string, lanPort: string, priority: number): GatewayNode => {
    const runDir = path.join(connector.dir, `gateway-${name.toLowerCase()}`, 'run');
    fs.mkdirSync(runDir, { recursive: true });
    return { name, host, address, lanPort, runDir, netnsPrefix: `${lab.prefix}n${name.toLowerCase()}`, priority };
  };
  return {
    lab,
    topology,
    connector,
    nodes: {
      A: node('A', topology.gatewayHost, ADDRESSES.gatewayHost, 'lan-gw', 150),
      B: node('B', topology.hosts.gw2 as string, ADDRESSES.standbyHost, 'lan-gw2', 100),
    },
    hostKeyDir,
    key: await lab.sshKeypair('forwarder_ssh_key'),
    logs,
    probes: undefined,
  };
}

function gatewayEnv(fl: FailoverLab, node: GatewayNode, settings: NodeSettings): NodeJS.ProcessEnv {
  const authorizedKeys = path.join(fl.connector.dir, 'authorized_keys');
  if (!fs.existsSync(authorizedKeys)) fs.copyFileSync(fl.key.publicKey, authorizedKeys);
  return {
    NO_COLOR: '1',
    NETMASK: String(ADDRESSES.netmask),
    DEFAULT_GATEWAY: ADDRESSES.router,
    NIC: 'eth0',
    RUN_DIR: node.runDir,
    NETNS_PREFIX: node.netnsPrefix,
    AUTHORIZED_KEYS_FILE: authorizedKeys,
    HOST_KEY_DIR: fl.hostKeyDir,
    RULES_FILE: fl.connector.rulesFile,
    FAILOVER: 'on',
    VRRP_PRIORITY: String(node.priority),
    VRRP_PREEMPT: settings.preempt ? 'on' : 'off',
    ...(settings.advertIntervalS === undefined ? {} : { VRRP_ADVERT_INTERVAL: String(settings.advertIntervalS) }),
  };
}

/** The IPs' network namespace on a node. */
export function ipNetns(node: GatewayNode, ip: string): string {
  return namesFor(ip, { netnsPrefix: node.netnsPrefix, runDir: node.runDir }).netns;
}

/** What a node's keepalived last announced per IP (read from its state dir). */
export function announced(node: GatewayNode): Record<string, VrrpState | undefined> {
  const announcements = readAnnouncements(vrrpStateDir(node.runDir), bootTimeMs(fs.readFileSync('/proc/stat', 'utf8')) ?? 0);
  return Object.fromEntries(FAILOVER_IPS.map((ip) => [ip, announcements[ipToHex(ip)]?.state]));
}

/** Waits until the node's keepalived has announced `state` for every IP. */
export async function waitForRole(node: GatewayNode, state: VrrpState, timeoutMs = 30_000): Promise<void> {
  await waitFor(() => (FAILOVER_IPS.every((ip) => announced(node)[ip] === state) ? true : undefined), timeoutMs, `node ${node.name} to announce ${state} for ${FAILOVER_IPS.join(', ')}`, node.process);
}

/** Starts bin/gateway with failover on a node. */
export function startNode(fl: FailoverLab, node: GatewayNode, settings: NodeSettings = {}): LabProcess {
  node.process = fl.lab.spawn(node.host, [BIN('gateway'), fl.connector.ipsConf], {
    hostLike: true,
    logFile: path.join(fl.logs, `gateway-${node.name}.log`),
    env: gatewayEnv(fl, node, settings),
  });
  return node.process;
}

/** Starts the forwarder with strict host key checking against the gateways' one host key. */
export function startStrictForwarder(fl: FailoverLab): LabProcess {
  const hostKey = fs.readFileSync(path.join(fl.hostKeyDir, 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  const knownHosts = path.join(fl.connector.dir, 'known_hosts');
  fs.writeFileSync(knownHosts, FAILOVER_IPS.map((ip) => `${ip} ${hostKey}\n`).join(''));
  return startForwarder(fl.lab, fl.topology, fl.connector, fl.key, path.join(fl.logs, 'forwarder.log'), {
    SSH_KNOWN_HOSTS: knownHosts,
    SSH_STRICT_HOST_KEY_CHECKING: 'yes',
  });
}

/** Starts node A, waits until it holds both IPs, then node B as its standby, then the forwarder. */
export async function startFailoverLab(fl: FailoverLab, settings: NodeSettings = {}): Promise<void> {
  startNode(fl, fl.nodes.A, settings);
  await waitForRole(fl.nodes.A, 'MASTER');
  startNode(fl, fl.nodes.B, settings);
  await waitForRole(fl.nodes.B, 'BACKUP');
  startStrictForwarder(fl);
}

/** Which nodes hold each IP right now (the address on the IP's macvlan in the node's namespace). */
export async function holders(fl: FailoverLab): Promise<Record<string, ('A' | 'B')[]>> {
  const result: Record<string, ('A' | 'B')[]> = {};
  await Promise.all(
    FAILOVER_IPS.flatMap((ip) =>
      [fl.nodes.A, fl.nodes.B].map(async (node) => {
        const device = namesFor(ip, { netnsPrefix: node.netnsPrefix, runDir: node.runDir }).device;
        const shown = await fl.lab.exec(undefined, ['ip', '-n', ipNetns(node, ip), '-json', 'address', 'show', 'dev', device], { reject: false });
        const holds = parseLinks(String(shown.stdout)).some((link) => link.addresses.some((address) => address.local === ip));
        if (holds) (result[ip] ??= []).push(node.name);
      }),
    ),
  );
  for (const ip of FAILOVER_IPS) result[ip] = (result[ip] ?? []).sort();
  return result;
}

export interface HolderSample {
  atMs: number;
  holders: Record<string, ('A' | 'B')[]>;
}

/** Whether a namespace's routing tables (/proc/<pid>/net/fib_trie of a process in it) have `ip` as a local address. */
export function fibHasLocal(fibTrie: string, ip: string): boolean {
  return new RegExp(`\\|-- ${ip.replaceAll('.', '\\.')}\\n\\s+/32 host LOCAL`).test(fibTrie);
}

/**
 * Samples the holders of every IP every `everyMs`. Each sample reads /proc/<pid>/net/fib_trie of
 * a process parked in each IP namespace of each node (a `sleep`), so that sampling runs no
 * program: on a busy machine a sample stays well within its 100 ms.
 */
export class HolderSampler {
  readonly samples: HolderSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly anchors: { node: 'A' | 'B'; ip: string; process: LabProcess }[] = [];

  constructor(
    private readonly fl: FailoverLab,
    private readonly everyMs = 100,
  ) {}

  start(): void {
    for (const node of [this.fl.nodes.A, this.fl.nodes.B]) {
      for (const ip of FAILOVER_IPS) {
        this.anchors.push({ node: node.name, ip, process: this.fl.lab.spawn(ipNetns(node, ip), ['sleep', 'infinity'], { stdio: 'ignore' }) });
      }
    }
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }

  /** The pids of the parked processes (not the gateway's to stop). */
  anchorPids(): number[] {
    return this.anchors.map((anchor) => anchor.process.child.pid ?? 0);
  }

  private sample(): void {
    const sampled: Record<string, ('A' | 'B')[]> = Object.fromEntries(FAILOVER_IPS.map((ip) => [ip, []]));
    for (const anchor of this.anchors) {
      let fib: string;
      try {
        fib = fs.readFileSync(`/proc/${anchor.process.child.pid}/net/fib_trie`, 'utf8');
      } catch {
        continue;
      }
      if (fibHasLocal(fib, anchor.ip)) sampled[anchor.ip]?.push(anchor.node);
    }
    for (const ip of FAILOVER_IPS) sampled[ip]?.sort();
    this.samples.push({ atMs: Date.now(), holders: sampled });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const anchor of this.anchors.splice(0)) await this.fl.lab.stop(anchor.process);
  }

  /** Samples in which some IP had two holders. */
  doubleHolders(): HolderSample[] {
    return this.samples.filter((sample) => Object.values(sample.holders).some((nodes) => nodes.length > 1));
  }

  /** The first sample from `sinceMs` on in which `node` holds `ip`. */
  firstHeld(ip: string, node: 'A' | 'B', sinceMs: number): HolderSample | undefined {
    return this.samples.find((sample) => sample.atMs >= sinceMs && sample.holders[ip]?.includes(node));
  }
}

export interface ProbeResult {
  startedMs: number;
  endedMs: number;
  ok: boolean;
  body?: string;
  error?: string;
}

export interface Probe {
  process: LabProcess;
  log: string;
  results(): ProbeResult[];
}

/** An HTTP GET from `ns` every `everyMs`, each with its own timeout, logged as it ends. */
export async function startProbe(lab: Lab, ns: string, url: string, name: string, everyMs = 100, timeoutMs = 1000): Promise<Probe> {
  const log = path.join(lab.tempDir, `probe-${name}.jsonl`);
  const handle = lab.spawn(ns, [process.execPath, path.join(PACKAGE_ROOT, 'lab', 'http-probe.mjs'), url, String(everyMs), String(timeoutMs), log]);
  await waitFor(() => (handle.output().includes('probing') ? true : undefined), 5000, `probe ${name}`, handle);
  return {
    process: handle,
    log,
    results: () =>
      fs
        .readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as ProbeResult),
  };
}

const forwarderService = SERVICES.find((service) => service.name === PODS.forwarder.name)!;

/** What the far ends answer when the path works: the external server sees the IP, my-pod1 sees the forwarder pod. */
export const EXPECTED = {
  podToExternal: `external-server saw you as ${FAILOVER_IPS[0]}`,
  externalToPod: `${PODS.pod1.name} saw you as ${PODS.forwarder.ip}`,
};

/** pod1 -> external server (through the forwarder and the IP 192.168.122.200) and back through that IP, every 100 ms. */
export async function startProbes(fl: FailoverLab): Promise<void> {
  fl.probes = {
    podToExternal: await startProbe(fl.lab, fl.topology.pods.pod1.netns, `http://${forwarderService.clusterIP}:${forwarderService.port}/`, 'pod-to-external'),
    externalToPod: await startProbe(fl.lab, fl.topology.external, `http://${FAILOVER_IPS[0]}/`, 'external-to-pod'),
  };
}

/** The first request started at or after `sinceMs` that got the expected answer. */
export function firstSuccess(probe: Probe, expected: string, sinceMs: number): ProbeResult | undefined {
  return probe.results().find((result) => result.startedMs >= sinceMs && result.ok && result.body === expected);
}

/** Answered requests whose answer is not the expected one (e.g. the external server saw another source IP). */
export function wrongAnswers(probe: Probe, expected: string): ProbeResult[] {
  return probe.results().filter((result) => result.ok && result.body !== expected);
}

/** Waits until both probes have succeeded with requests started at or after `sinceMs`. */
export async function waitForTraffic(fl: FailoverLab, sinceMs: number, timeoutMs = 30_000): Promise<{ podToExternal: ProbeResult; externalToPod: ProbeResult }> {
  const probes = fl.probes!;
  return waitFor(
    () => {
      const podToExternal = firstSuccess(probes.podToExternal, EXPECTED.podToExternal, sinceMs);
      const externalToPod = firstSuccess(probes.externalToPod, EXPECTED.externalToPod, sinceMs);
      return podToExternal && externalToPod ? { podToExternal, externalToPod } : undefined;
    },
    timeoutMs,
    'pod -> external and external -> pod to work again',
  );
}

/**
 * Waits until the second source works both ways through its own IP (192.168.122.201): my-pod2
 * reaches the external server as that IP, and the external server reaches my-pod2 through it.
 */
export async function waitForSecondSource(fl: FailoverLab, timeoutMs = 30_000): Promise<void> {
  const ip = FAILOVER_IPS[1];
  const { pod2 } = fl.topology.pods;
  await waitFor(
    async () => {
      const out = await httpGet(fl.lab, pod2.netns, `http://${forwarderService.clusterIP}:${forwarderService.port}/`, 2000);
      const back = await httpGet(fl.lab, fl.topology.external, `http://${ip}/`, 2000);
      return out === `external-server saw you as ${ip}` && back === `${PODS.pod2.name} saw you as ${PODS.forwarder.ip}` ? true : undefined;
    },
    timeoutMs,
    `my-pod2 <-> external server through ${ip}`,
  );
}

/** The node loses its link to the LAN (its bridge port goes down: no carrier), or gets it back. */
export async function setLink(fl: FailoverLab, node: GatewayNode, up: boolean): Promise<void> {
  await fl.lab.exec(fl.topology.lan, ['ip', 'link', 'set', node.lanPort, up ? 'up' : 'down']);
}

/** Kills (SIGKILL), all at once, every keepalived and sshd of the node's IPs (not the sampler's parked processes); its gateway keeps running. */
export async function killDaemons(fl: FailoverLab, node: GatewayNode, spare: readonly number[] = []): Promise<number[]> {
  const listed = await Promise.all(FAILOVER_IPS.map((ip) => fl.lab.exec(undefined, ['ip', 'netns', 'pids', ipNetns(node, ip)], { reject: false })));
  const pids = listed.flatMap((result) => result.stdout.split('\n').filter(Boolean).map(Number)).filter((pid) => !spare.includes(pid));
  // All stopped first, then all killed: as in a crash, none of them runs another instruction.
  // Killed one by one, keepalived's VRRP child could outlive its parent by a moment, get its
  // parent-death SIGTERM and remove the address itself, which is the gateway's job to test.
  for (const signal of ['SIGSTOP', 'SIGKILL'] as const) {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
  }
  return pids;
}

export interface FailoverTiming {
  /** How the active node died: 'link' (its link to the LAN went down) or 'daemons' (its keepalived and sshd were killed). */
  how: 'link' | 'daemons';
  from: 'A' | 'B';
  to: 'A' | 'B';
  /** From the failure to the first 100 ms sample in which the failed node no longer held the IP. */
  releasedMs: number;
  /** From the failure to the first 100 ms sample in which the standby held the IP. */
  ipMovedMs: number;
  /** From the failure to the end of the first request (started after it) that reached the external server as the IP. */
  podToExternalMs: number;
  /** From the failure to the end of the first request (started after it) from the external server that reached the pod. */
  externalToPodMs: number;
}

/**
 * Fails the node holding the IPs (`how`), and measures until the other node holds them and
 * traffic works both ways again. The sampler and the probes must be running.
 */
export async function failOver(fl: FailoverLab, sampler: HolderSampler, from: GatewayNode, to: GatewayNode, how: 'link' | 'daemons'): Promise<FailoverTiming> {
  if (how === 'link') await setLink(fl, from, false);
  else await killDaemons(fl, from, sampler.anchorPids());
  // From here on the node is down: requests started earlier may have been answered by it.
  const failedAtMs = Date.now();
  const moved = await waitFor(() => sampler.firstHeld(FAILOVER_IPS[0], to.name, failedAtMs), 30_000, `node ${to.name} to hold ${FAILOVER_IPS[0]}`, to.process);
  const traffic = await waitForTraffic(fl, failedAtMs);
  const released = sampler.samples.find((sample) => sample.atMs >= failedAtMs && !sample.holders[FAILOVER_IPS[0]]?.includes(from.name));
  return {
    how,
    from: from.name,
    to: to.name,
    releasedMs: (released?.atMs ?? moved.atMs) - failedAtMs,
    ipMovedMs: moved.atMs - failedAtMs,
    podToExternalMs: traffic.podToExternal.endedMs - failedAtMs,
    externalToPodMs: traffic.externalToPod.endedMs - failedAtMs,
  };
}

/** `bin/gateway status` on a node (its stdout), as an operator runs it there. */
export async function nodeStatus(fl: FailoverLab, node: GatewayNode, args: readonly string[] = []): Promise<string> {
  const handle = fl.lab.spawn(node.host, [BIN('gateway'), 'status', ...args, fl.connector.ipsConf], { hostLike: true, env: gatewayEnv(fl, node, {}) });
  await handle.exited;
  return handle.output();
}

/** Stops both gateways and tears each node down with bin/gateway teardown. */
export async function stopFailoverLab(fl: FailoverLab): Promise<void> {
  for (const node of [fl.nodes.A, fl.nodes.B]) {
    if (node.process) await fl.lab.stop(node.process);
    const teardown = fl.lab.spawn(node.host, [BIN('gateway'), 'teardown', fl.connector.ipsConf], {
      hostLike: true,
      env: { NO_COLOR: '1', RUN_DIR: node.runDir, NETNS_PREFIX: node.netnsPrefix },
    });
    const code = await teardown.exited;
    if (code !== 0) throw new Error(`gateway teardown on node ${node.name} failed (exit ${code}): ${teardown.output()}`);
  }
}
