import type { ExternalService, ServiceRef } from '../lib/externalservice.js';
import { ConfigError, quote } from '../lib/errors.js';
import { isUnicastIPv4, unicastIPv4Problem } from '../lib/ipv4.js';
import { emptyRules, MAX_BLOCK_LINES, toBlock, type RulesDocument } from '../lib/rules.js';
import type { ClusterSnapshot, PodInfo, ServiceInfo } from './snapshot.js';
import { MAX_PORT, MIN_PORT, PortTable } from './ports.js';

/**
 * genrule.py as a pure function of (ExternalServices, cluster snapshot). Port allocation is the
 * original's, step for step: ports are handed out even when the rule that needs them cannot be
 * emitted (missing pod IP, headless service, ...), so nothing shifts when the value appears.
 * Only the emission of lines is filtered.
 */

export interface GenerateOptions {
  /** Where the forwarder pods live (FORWARDER_NAMESPACE). */
  forwarderNamespace: string;
}

export interface GenerateResult {
  rules: RulesDocument;
  /** Values that kept rules from being emitted (missing service, pod without IP, ...). */
  warnings: string[];
  /**
   * ExternalServices left out whole because their rules would not fit a block (MAX_BLOCK_LINES):
   * a Service with thousands of ports, hundreds of sources times hundreds of ports. They are
   * reported instead of stalling the cycle and crashing the YAML writer.
   */
  errors: ConfigError[];
}

/** An ExternalService, and the conf file it came from when there is one (for messages). */
export type SourcedExternalService = ExternalService & { file?: string };

export function generateRules(services: readonly SourcedExternalService[], snapshot: ClusterSnapshot, options: GenerateOptions): GenerateResult {
  const cluster = indexSnapshot(snapshot);
  const state: GenerationState = { rules: emptyRules(), warnings: new Set(), errors: [], remotePorts: new Map(), gatewayLines: new Map() };
  for (const service of services) addRules(service, cluster, options, state);
  return { rules: state.rules, warnings: [...state.warnings], errors: state.errors };
}

/** What the ExternalServices of one generation share. */
interface GenerationState {
  rules: RulesDocument;
  warnings: Set<string>;
  errors: ConfigError[];
  /** The remote port table of each source IP (global across ExternalServices, as the original's). */
  remotePorts: Map<string, PortTable>;
  /** Lines of each gateway IP's block so far. */
  gatewayLines: Map<string, number>;
}

interface ClusterIndex {
  pod(namespace: string, name: string): PodInfo | undefined;
  service(ref: ServiceRef): ServiceInfo | undefined;
  endpointIPs(ref: ServiceRef): string[];
}

const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;

function indexSnapshot(snapshot: ClusterSnapshot): ClusterIndex {
  const pods = new Map(snapshot.pods.map((pod) => [keyOf(pod.namespace, pod.name), pod]));
  const services = new Map(snapshot.services.map((service) => [keyOf(service.namespace, service.name), service]));
  const endpoints = new Map(snapshot.endpoints.map((entry) => [keyOf(entry.namespace, entry.name), entry]));
  return {
    pod: (namespace, name) => pods.get(keyOf(namespace, name)),
    service: (ref) => services.get(keyOf(ref.namespace, ref.name)),
    endpointIPs: (ref) => endpoints.get(keyOf(ref.namespace, ref.name))?.readyIPs ?? [],
  };
}

/** A cluster IP a tunnel can reach: not headless ("None"), not ExternalName, not missing. */
function usableClusterIP(service: ServiceInfo | undefined): string | undefined {
  if (!service || service.type === 'ExternalName') return undefined;
  return isUnicastIPv4(service.clusterIP) ? service.clusterIP : undefined;
}

/** What the original stored for a remote port: "clusterIP:svcPort" with kubectl's text for a missing IP. */
function remoteKey(service: ServiceInfo | undefined, port: number): string {
  return `${service?.clusterIP ?? '<none>'}:${port}`;
}

/** Services per source IP, in first-appearance order, each service once (genrule.py's set). */
function servicesByIP(sources: readonly { service: ServiceRef; sourceIP: string }[]): Map<string, ServiceRef[]> {
  const byIP = new Map<string, ServiceRef[]>();
  for (const { service, sourceIP } of sources) {
    const list = byIP.get(sourceIP) ?? [];
    if (!list.some((known) => known.namespace === service.namespace && known.name === service.name)) list.push(service);
    byIP.set(sourceIP, list);
  }
  return byIP;
}

function addRules(externalService: SourcedExternalService, cluster: ClusterIndex, options: GenerateOptions, state: GenerationState): void {
  const { rules, remotePorts } = state;
  const { name, targetIP, sources } = externalService;
  const warn = (message: string): void => {
    state.warnings.add(`${name}: ${message}`);
  };
  const localPorts = new PortTable();
  const targetPorts = externalService.ports.map((port) => port.targetPort);
  const sourceIPs = sources.map((source) => source.sourceIP);
  const servicesOfIP = servicesByIP(sources);
  // A one-way source has no -R tunnel and no gateway rules, so it takes no remote port either.
  const remoteSources = sources.filter((source) => source.bidirectional);
  const remoteIPs = remoteSources.map((source) => source.sourceIP);
  const remoteServicesOfIP = servicesByIP(remoteSources);
  const remoteTable = (ip: string): PortTable => {
    let table = remotePorts.get(ip);
    if (!table) remotePorts.set(ip, (table = new PortTable()));
    return table;
  };

  const pod = cluster.pod(options.forwarderNamespace, name);
  const podIP = isUnicastIPv4(pod?.podIP) ? pod.podIP : undefined;
  if (podIP === undefined && targetPorts.length > 0 && sources.length > 0) {
    const which = `forwarder pod ${options.forwarderNamespace}/${name}`;
    const state = !pod ? 'does not exist yet' : pod.podIP === undefined ? 'has no IP yet' : `has IP ${quote(pod.podIP)}, which ${unicastIPv4Problem(pod.podIP) ?? ''}`;
    warn(`${which} ${state}: its iptables rules are left out`);
  }
  const remoteRefs = new Set(remoteSources.map((source) => keyOf(source.service.namespace, source.service.name)));
  for (const { service: ref } of sources) {
    const key = keyOf(ref.namespace, ref.name);
    const service = cluster.service(ref);
    if (!service) warn(`service ${key} not found: its rules are left out until it exists`);
    else if (remoteRefs.has(key) && usableClusterIP(service) === undefined) {
      const { clusterIP } = service;
      const why =
        service.type === 'ExternalName'
          ? 'an ExternalName service'
          : clusterIP === 'None'
            ? 'headless'
            : clusterIP === undefined
              ? 'no cluster IP'
              : `cluster IP ${quote(clusterIP)} ${unicastIPv4Problem(clusterIP) ?? ''}`;
      warn(`service ${key} has no cluster IP to tunnel to (${why}): its reverse-path rules are left out`);
    }
  }
  const servicePorts = (ref: ServiceRef): number[] => cluster.service(ref)?.ports.map((port) => port.port) ?? [];

  const tooLarge = oversizedBlock({ sourceIPs, targetPorts, servicesOfIP, remoteIPs, remoteServicesOfIP }, cluster, state.gatewayLines);
  if (tooLarge !== undefined) {
    state.errors.push(new ConfigError(externalService.file ?? `ExternalService ${name}`, undefined, `${name}: its rules are left out: ${tooLarge}`));
    return;
  }

  for (const port of targetPorts) localPorts.mark(port);
  for (const ip of remoteIPs) {
    const table = remoteTable(ip);
    for (const ref of remoteServicesOfIP.get(ip) ?? []) for (const port of servicePorts(ref)) table.mark(port);
  }

  // Local ports cannot run out: a file's marks and tunnels are both bounded by MAX_BLOCK_LINES.
  const sshTunnel: string[] = [];
  for (const ip of sourceIPs) {
    for (const targetPort of targetPorts) {
      const fwdPort = localPorts.allocate(`${ip}:${targetPort}`);
      if (fwdPort !== undefined) sshTunnel.push(`${fwdPort}:${targetIP}:${targetPort},${ip}`);
    }
  }

  const remoteSshTunnel: string[] = [];
  const remotePortsMissing = new Map<string, number>();
  for (const ip of remoteIPs) {
    for (const ref of remoteServicesOfIP.get(ip) ?? []) {
      const service = cluster.service(ref);
      const clusterIP = usableClusterIP(service);
      for (const port of servicePorts(ref)) {
        const remotePort = remoteTable(ip).allocate(remoteKey(service, port));
        if (remotePort === undefined) remotePortsMissing.set(ip, (remotePortsMissing.get(ip) ?? 0) + 1);
        else if (clusterIP !== undefined) remoteSshTunnel.push(`${ip}:${remotePort}:${clusterIP}:${port},${ip}`);
      }
    }
  }
  for (const [ip, missing] of remotePortsMissing) {
    warn(`no remote port left on ${ip} (${MIN_PORT}..${MAX_PORT} all taken by services and tunnels): ${missing} reverse tunnel(s) left out`);
  }

  const forwarderIptables: string[] = [];
  for (const [ip, refs] of servicesOfIP) {
    for (const targetPort of targetPorts) {
      const fwdPort = localPorts.lookup(`${ip}:${targetPort}`);
      for (const ref of refs) {
        for (const endpointIP of cluster.endpointIPs(ref)) {
          if (!isUnicastIPv4(endpointIP)) {
            warn(`service ${keyOf(ref.namespace, ref.name)}: endpoint ${quote(endpointIP)} ${unicastIPv4Problem(endpointIP) ?? ''}: its rules are left out`);
            continue;
          }
          if (podIP === undefined || fwdPort === undefined) continue;
          forwarderIptables.push(
            `PREROUTING -t nat -m tcp -p tcp --dst ${podIP} --src ${endpointIP} --dport ${targetPort} -j DNAT --to-destination ${podIP}:${fwdPort}`,
            `POSTROUTING -t nat -m tcp -p tcp --dst ${targetIP} --dport ${fwdPort} -j SNAT --to-source ${podIP}`,
          );
        }
      }
    }
  }

  rules.forwarder[name] = {
    'iptables-rule': toBlock(forwarderIptables),
    'remote-ssh-tunnel': toBlock(remoteSshTunnel),
    'ssh-tunnel': toBlock(sshTunnel),
  };

  for (const ip of sourceIPs) rules.gateway[ip] ??= { 'iptables-rule': '' };
  for (const [ip, refs] of remoteServicesOfIP) {
    const lines: string[] = [];
    for (const ref of refs) {
      const service = cluster.service(ref);
      const clusterIP = usableClusterIP(service);
      for (const port of servicePorts(ref)) {
        const remotePort = remoteTable(ip).lookup(remoteKey(service, port));
        if (remotePort === undefined || clusterIP === undefined) continue;
        lines.push(
          `PREROUTING -t nat -m tcp -p tcp --dst ${ip} --src ${targetIP} --dport ${port} -j DNAT --to-destination ${ip}:${remotePort}`,
          `POSTROUTING -t nat -m tcp -p tcp --dst ${targetIP} --dport ${remotePort} -j SNAT --to-source ${ip}`,
        );
      }
    }
    const entry = rules.gateway[ip] ?? { 'iptables-rule': '' };
    entry['iptables-rule'] += toBlock(lines);
    rules.gateway[ip] = entry;
    state.gatewayLines.set(ip, (state.gatewayLines.get(ip) ?? 0) + lines.length);
  }
}

interface Shape {
  sourceIPs: readonly string[];
  targetPorts: readonly number[];
  servicesOfIP: ReadonlyMap<string, ServiceRef[]>;
  remoteIPs: readonly string[];
  remoteServicesOfIP: ReadonlyMap<string, ServiceRef[]>;
}

/**
 * Which block of an ExternalService's rules would hold more than MAX_BLOCK_LINES, and why; counted
 * before any port is allocated, so that an ExternalService left out takes no port from the others.
 */
function oversizedBlock(shape: Shape, cluster: ClusterIndex, gatewayLines: ReadonlyMap<string, number>): string | undefined {
  const portsOf = (ref: ServiceRef): number => cluster.service(ref)?.ports.length ?? 0;
  const over = (lines: number, block: string, why: string): string | undefined =>
    lines > MAX_BLOCK_LINES ? `its ${block} would be ${lines} lines (${why}), more than the ${MAX_BLOCK_LINES} a block may hold` : undefined;
  const sshLines = shape.sourceIPs.length * shape.targetPorts.length;
  let remoteLines = 0;
  let largest: { ref: ServiceRef; ports: number } | undefined;
  for (const ip of shape.remoteIPs) {
    for (const ref of shape.remoteServicesOfIP.get(ip) ?? []) {
      remoteLines += portsOf(ref);
      if (portsOf(ref) > (largest?.ports ?? 0)) largest = { ref, ports: portsOf(ref) };
    }
  }
  let iptablesLines = 0;
  for (const refs of shape.servicesOfIP.values()) {
    for (const ref of refs) iptablesLines += 2 * shape.targetPorts.length * cluster.endpointIPs(ref).length;
  }
  const largestText = largest ? `service ${keyOf(largest.ref.namespace, largest.ref.name)} has ${largest.ports} ports` : 'no service ports';
  const problem =
    over(sshLines, 'ssh-tunnel block', `${shape.sourceIPs.length} sources x ${shape.targetPorts.length} ports`) ??
    over(remoteLines, 'remote-ssh-tunnel block', `one per port of each source's service; ${largestText}`) ??
    over(iptablesLines, 'iptables-rule block', 'two per port and ready endpoint of each source');
  if (problem !== undefined) return problem;
  for (const [ip, refs] of shape.remoteServicesOfIP) {
    const lines = (gatewayLines.get(ip) ?? 0) + 2 * refs.reduce((sum, ref) => sum + portsOf(ref), 0);
    const gateway = over(lines, `block of gateway ${ip}`, 'its reverse-path rules added to those of the ExternalServices before it');
    if (gateway !== undefined) return gateway;
  }
  return undefined;
}
