import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ipToHex } from '../lib/ipv4.js';
import { parseIptablesSave } from '../lib/iptables.js';
import type { Lab } from './netns.js';
import { generateRules, publishRules, type Connector, type ExternalServiceSource } from './connector.js';
import { ADDRESSES, PODS, SERVICES, httpGet, loggedClients, type Topology } from './topology.js';

/** The original README's four "Test connectivity" checks, run for real in the lab. */

export interface Check {
  title: string;
  /** What a person would type to repeat it. */
  command: string;
  expected: string;
  seen: string;
  ok: boolean;
}

/** One of the app pods the checks use: its network namespace and its HTTP server's log. */
export interface CheckPod {
  name: string;
  namespace: string;
  netns: string;
  log: string;
}

/** Where the checks run: the app pods, the external server, and the forwarder's Service and pod. */
export interface ChecksTarget {
  pods: { pod1: CheckPod; pod2: CheckPod };
  external: string;
  externalLog: string;
  forwarder: { name: string; namespace: string; serviceIP: string; port: number; podIP: string };
}

const forwarderService = SERVICES.find((service) => service.name === PODS.forwarder.name)!;

/** The snapshot lab's pods and addresses as a check target. */
export function snapshotTarget(topology: Topology): ChecksTarget {
  const pod = (key: 'pod1' | 'pod2'): CheckPod => {
    const { name, namespace, netns, log } = topology.pods[key];
    return { name, namespace, netns, log: log! };
  };
  return {
    pods: { pod1: pod('pod1'), pod2: pod('pod2') },
    external: topology.external,
    externalLog: topology.externalLog,
    forwarder: { name: PODS.forwarder.name, namespace: PODS.forwarder.namespace, serviceIP: forwarderService.clusterIP, port: forwarderService.port, podIP: PODS.forwarder.ip },
  };
}

export async function connectivityChecks(lab: Lab, target: ChecksTarget, sources: readonly ExternalServiceSource[], timeoutMs = 3000): Promise<Check[]> {
  const checks: Check[] = [];
  const enabled = new Set(sources.map((source) => source.sourceIP));
  const { forwarder } = target;
  const pairs = [
    { pod: target.pods.pod1, sourceIP: ADDRESSES.sourceIPs[0] },
    { pod: target.pods.pod2, sourceIP: ADDRESSES.sourceIPs[1] },
  ];
  for (const { pod, sourceIP } of pairs) {
    const url = `http://${forwarder.serviceIP}:${forwarder.port}/`;
    const before = loggedClients(target.externalLog).length;
    const body = await httpGet(lab, pod.netns, url, timeoutMs);
    const logged = loggedClients(target.externalLog).slice(before);
    const seen = body.startsWith('error:') ? body : `external server logged ${logged.join(', ') || 'nothing'}`;
    const expected = enabled.has(sourceIP) ? `external server logged ${sourceIP}` : 'no access (source removed)';
    checks.push({
      title: `${pod.name} (${pod.namespace}) -> ${forwarder.name}.${forwarder.namespace}:${forwarder.port} -> external server ${ADDRESSES.external}:8000`,
      command: `ip netns exec ${pod.netns} curl ${url}`,
      expected,
      seen,
      ok: enabled.has(sourceIP) ? logged.length === 1 && logged[0] === sourceIP : body.startsWith('error:') && logged.length === 0,
    });
  }
  for (const { pod, sourceIP } of pairs) {
    const url = `http://${sourceIP}/`;
    const before = loggedClients(pod.log).length;
    const body = await httpGet(lab, target.external, url, timeoutMs);
    const logged = loggedClients(pod.log).slice(before);
    const expected = enabled.has(sourceIP) ? `${pod.name} answered and logged ${forwarder.podIP} (the forwarder pod)` : 'no access (source removed)';
    const seen = body.startsWith('error:') ? body : `${pod.name} answered and logged ${logged.join(', ') || 'nothing'}`;
    checks.push({
      title: `external server -> ${sourceIP}:80 -> ${pod.name} (${pod.namespace})`,
      command: `ip netns exec ${target.external} curl ${url}`,
      expected,
      seen,
      ok: enabled.has(sourceIP) ? logged.length === 1 && logged[0] === forwarder.podIP : body.startsWith('error:') && logged.length === 0,
    });
  }
  return checks;
}

/** Waits until every check passes (tunnels take a moment to come up), then returns them. */
export async function waitForChecks(lab: Lab, target: ChecksTarget, sources: readonly ExternalServiceSource[], timeoutMs: number): Promise<Check[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const checks = await connectivityChecks(lab, target, sources);
    if (checks.every((check) => check.ok) || Date.now() > deadline) return checks;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function natRuleCount(lab: Lab, ns: string): Promise<number> {
  const saved = await lab.exec(ns, ['iptables-save', '-t', 'nat'], { reject: false });
  return parseIptablesSave(saved.stdout).rules.length;
}

export interface AppliedForSource {
  forwarderRules: number;
  gatewayRules: number;
  tunnels: number;
}

/**
 * The command lines of the ssh processes in network namespace `ns`, read from /proc: other labs on
 * the same machine (their own namespaces, the same addresses) run ssh processes too, which `ps`
 * in the host's PID namespace would list alike.
 */
export function sshProcessesIn(ns: string): string[][] {
  let netns: fs.Stats;
  try {
    netns = fs.statSync(`/run/netns/${ns}`);
  } catch {
    return [];
  }
  return fs.readdirSync('/proc').flatMap((pid) => {
    if (!/^\d+$/.test(pid)) return [];
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'ssh') return [];
      const own = fs.statSync(`/proc/${pid}/ns/net`);
      if (own.ino !== netns.ino || own.dev !== netns.dev) return [];
      return [fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)];
    } catch {
      // The process exited meanwhile.
      return [];
    }
  });
}

/**
 * What is applied for each source IP: forwarder nat rules naming its pod, the gateway's nat rules
 * in its namespace, and ssh tunnels to it (ssh processes in the forwarder's pod whose last
 * argument is the IP).
 */
export async function appliedState(lab: Lab, topology: Topology, connector: Connector): Promise<Record<string, AppliedForSource>> {
  const saved = await lab.exec(topology.pods.forwarder.netns, ['iptables-save', '-t', 'nat'], { reject: false });
  const forwarderRules = parseIptablesSave(saved.stdout).rules;
  const tunnelHosts = sshProcessesIn(topology.pods.forwarder.netns).map((args) => args.at(-1) ?? '');
  const state: Record<string, AppliedForSource> = {};
  const podOf: Record<string, string> = { [ADDRESSES.sourceIPs[0]]: PODS.pod1.ip, [ADDRESSES.sourceIPs[1]]: PODS.pod2.ip };
  for (const ip of ADDRESSES.sourceIPs) {
    const pod = podOf[ip] as string;
    state[ip] = {
      forwarderRules: forwarderRules.filter((rule) => rule.args.some((arg) => arg.startsWith(`${pod}/`) || arg === pod)).length,
      gatewayRules: await natRuleCount(lab, `${connector.netnsPrefix}${ipToHex(ip)}`),
      tunnels: tunnelHosts.filter((host) => host === ip).length,
    };
  }
  return state;
}

export interface ChangeTiming {
  description: string;
  /** When the rules were published (ms since the epoch, as the components' log timestamps). */
  publishedAtMs: number;
  /** Until the nat rules of both and the tunnels (ssh processes) are as the rules say. */
  appliedMs: number;
  /** Until, in addition, a request through each source's tunnels works (or, for a removed one, fails). */
  usableMs: number;
}

/**
 * Regenerates and publishes the rules for `sources`, then measures how long until the forwarder
 * and the gateway have applied them (polled every 10 ms).
 */
export async function applyChange(
  lab: Lab,
  topology: Topology,
  connector: Connector,
  sources: readonly ExternalServiceSource[],
  timeoutMs = 10_000,
): Promise<ChangeTiming> {
  const rules = await generateRules(connector, sources);
  const enabled = new Set(sources.map((source) => source.sourceIP));
  const started = performance.now();
  const publishedAtMs = Date.now();
  publishRules(connector, rules);
  for (;;) {
    const state = await appliedState(lab, topology, connector);
    const done = ADDRESSES.sourceIPs.every((ip) => {
      const entry = state[ip]!;
      return enabled.has(ip)
        ? entry.forwarderRules > 0 && entry.gatewayRules > 0 && entry.tunnels === 2
        : entry.forwarderRules === 0 && entry.gatewayRules === 0 && entry.tunnels === 0;
    });
    const elapsed = performance.now() - started;
    if (done) {
      for (;;) {
        const checks = await connectivityChecks(lab, snapshotTarget(topology), sources, 1000);
        const usable = performance.now() - started;
        if (checks.every((check) => check.ok)) return { description: `sources ${[...enabled].join(', ') || 'none'}`, publishedAtMs, appliedMs: elapsed, usableMs: usable };
        if (usable > timeoutMs) throw new Error(`the change was applied but not usable within ${timeoutMs} ms: ${JSON.stringify(checks)}`);
      }
    }
    if (elapsed > timeoutMs) throw new Error(`the change was not applied within ${timeoutMs} ms: ${JSON.stringify(state)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
