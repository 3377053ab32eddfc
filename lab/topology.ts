import fs from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT, waitFor, type Lab, type LabProcess } from './netns.js';

/**
 * The original README's three servers, built in network namespaces on one machine:
 *
 *   LAN 192.168.122.0/24 (a bridge in its own namespace; 192.168.122.1 plays the router)
 *    ├─ external server 192.168.122.139: HTTP on :8000, logs client addresses
 *    ├─ gateway host    192.168.122.192: NIC eth0; bin/gateway adds 192.168.122.200 and .201
 *    └─ k8s node        192.168.122.10 : pod network 10.244.0.0/24 on bridge cni0 (10.244.0.1),
 *         masquerades pod traffic (so pods leave as the node's address, the problem this solves)
 *         and DNATs service IPs to pods like kube-proxy (br_netfilter on the bridge):
 *         ├─ pod my-pod1 (ns1) 10.244.0.11, HTTP :80  <- service ns1/my-service1 10.96.0.11:80
 *         ├─ pod my-pod2 (ns2) 10.244.0.12, HTTP :80  <- service ns2/my-service2 10.96.0.12:80
 *         └─ forwarder pod 10.244.0.50                <- service external-services/
 *                                                       my-external-service1 10.96.0.100:8000
 *
 * buildNetwork makes the LAN, the hosts and the node's pod network; buildTopology adds the pods,
 * services and service DNAT of the snapshot lab. The cluster lab (lab/cluster-lab.ts) adds a
 * control-plane host instead, and the lab node runs the pods.
 */

export const LAB_PREFIX = 'k8xd';

export const ADDRESSES = {
  netmask: 24,
  router: '192.168.122.1',
  external: '192.168.122.139',
  gatewayHost: '192.168.122.192',
  /** The second gateway node (failover lab only). */
  standbyHost: '192.168.122.193',
  sourceIPs: ['192.168.122.200', '192.168.122.201'] as const,
  node: '192.168.122.10',
  podGateway: '10.244.0.1',
  podCidr: '10.244.0.0/24',
} as const;

export interface LabPod {
  key: string;
  namespace: string;
  name: string;
  ip: string;
  netns: string;
  /** HTTP server log (app pods only). */
  log?: string;
}

export interface LabService {
  namespace: string;
  name: string;
  clusterIP: string;
  port: number;
  targetPort: number;
  endpoint: string;
}

export const PODS = {
  pod1: { namespace: 'ns1', name: 'my-pod1', ip: '10.244.0.11' },
  pod2: { namespace: 'ns2', name: 'my-pod2', ip: '10.244.0.12' },
  forwarder: { namespace: 'external-services', name: 'my-external-service1', ip: '10.244.0.50' },
} as const;

export const SERVICES: readonly LabService[] = [
  { namespace: 'ns1', name: 'my-service1', clusterIP: '10.96.0.11', port: 80, targetPort: 80, endpoint: PODS.pod1.ip },
  { namespace: 'ns2', name: 'my-service2', clusterIP: '10.96.0.12', port: 80, targetPort: 80, endpoint: PODS.pod2.ip },
  {
    namespace: 'external-services',
    name: 'my-external-service1',
    clusterIP: '10.96.0.100',
    port: 8000,
    targetPort: 8000,
    endpoint: PODS.forwarder.ip,
  },
];

/** The LAN with its hosts and the node's pod network, without pods. */
export interface Network {
  lab: Lab;
  lan: string;
  external: string;
  gatewayHost: string;
  node: string;
  /** Hosts added by name (buildNetwork's `hosts`): their network namespaces. */
  hosts: Record<string, string>;
  externalLog: string;
  servers: LabProcess[];
}

export interface Topology extends Network {
  pods: Record<keyof typeof PODS, LabPod>;
}

const HTTP_SERVER = path.join(PACKAGE_ROOT, 'lab', 'http-server.mjs');
const HTTP_GET = path.join(PACKAGE_ROOT, 'lab', 'http-get.mjs');

/** Starts the lab's HTTP server (logging client addresses to a file) in a namespace; returns the log file. */
async function serveHttp(lab: Lab, servers: LabProcess[], ns: string, ip: string, port: number, name: string): Promise<string> {
  const log = path.join(lab.tempDir, `${name}.access.log`);
  fs.writeFileSync(log, '');
  // --no-opt: V8's optimizing compiler, warming up on a fresh server, stalled single requests by
  // 1-2 ms, which the bench's short-request tail would count against whichever path it measured.
  const handle = lab.spawn(ns, [process.execPath, '--no-opt', HTTP_SERVER, ip, String(port), log, name]);
  await waitFor(() => (handle.output().includes('listening') ? true : undefined), 5000, `HTTP server ${name}`, handle);
  servers.push(handle);
  return log;
}

/**
 * Builds the LAN, the external server (with its HTTP server), the gateway host, the node with its
 * pod bridge (forwarding, br_netfilter, masquerade of pod traffic leaving the pod network), and
 * any further `hosts` (name -> address) on the LAN.
 */
export async function buildNetwork(lab: Lab, options: { hosts?: Record<string, string> } = {}): Promise<Network> {
  const lan = await lab.netns('lan');
  await lab.bridge(lan, 'br0');
  await lab.addr(lan, 'br0', `${ADDRESSES.router}/${ADDRESSES.netmask}`);

  const attach = async (name: string, address: string): Promise<string> => {
    const ns = await lab.netns(name);
    await lab.veth(lan, `lan-${name}`, ns, 'eth0');
    await lab.master(lan, `lan-${name}`, 'br0');
    await lab.addr(ns, 'eth0', `${address}/${ADDRESSES.netmask}`);
    await lab.route(ns, ['default', 'via', ADDRESSES.router]);
    return ns;
  };
  const external = await attach('ext', ADDRESSES.external);
  const gatewayHost = await attach('gw', ADDRESSES.gatewayHost);
  const node = await attach('node', ADDRESSES.node);
  const hosts: Record<string, string> = {};
  for (const [name, address] of Object.entries(options.hosts ?? {})) hosts[name] = await attach(name, address);

  // The node: pod bridge, forwarding, br_netfilter for service DNAT on the bridge, masquerade.
  await lab.bridge(node, 'cni0');
  await lab.addr(node, 'cni0', `${ADDRESSES.podGateway}/24`);
  await lab.sysctl(node, 'net.ipv4.ip_forward', '1');
  await lab.sysctl(node, 'net.bridge.bridge-nf-call-iptables', '1');
  await lab.exec(node, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', ADDRESSES.podCidr, '!', '-d', ADDRESSES.podCidr, '-j', 'MASQUERADE']);

  const servers: LabProcess[] = [];
  const externalLog = await serveHttp(lab, servers, external, ADDRESSES.external, 8000, 'external-server');
  return { lab, lan, external, gatewayHost, node, hosts, externalLog, servers };
}

/** The snapshot lab: the network, plus the pods as namespaces, their HTTP servers and the service DNAT. */
export async function buildTopology(lab: Lab, options: { hosts?: Record<string, string> } = {}): Promise<Topology> {
  const network = await buildNetwork(lab, options);
  const { node } = network;
  const pods = {} as Record<keyof typeof PODS, LabPod>;
  let index = 0;
  for (const [key, pod] of Object.entries(PODS) as [keyof typeof PODS, (typeof PODS)[keyof typeof PODS]][]) {
    index++;
    const ns = await lab.netns(key);
    await lab.veth(node, `veth${index}`, ns, 'eth0');
    await lab.master(node, `veth${index}`, 'cni0');
    await lab.addr(ns, 'eth0', `${pod.ip}/24`);
    await lab.route(ns, ['default', 'via', ADDRESSES.podGateway]);
    pods[key] = { key, namespace: pod.namespace, name: pod.name, ip: pod.ip, netns: ns };
  }

  const restore = ['*nat'];
  for (const service of SERVICES) {
    const rule = `-d ${service.clusterIP}/32 -p tcp -m tcp --dport ${service.port} -j DNAT --to-destination ${service.endpoint}:${service.targetPort}`;
    restore.push(`-A PREROUTING ${rule}`, `-A OUTPUT ${rule}`);
  }
  restore.push('COMMIT', '');
  await lab.exec(node, ['iptables-restore', '--noflush'], { input: restore.join('\n') });

  pods.pod1.log = await serveHttp(lab, network.servers, pods.pod1.netns, PODS.pod1.ip, 80, PODS.pod1.name);
  pods.pod2.log = await serveHttp(lab, network.servers, pods.pod2.netns, PODS.pod2.ip, 80, PODS.pod2.name);
  return { ...network, pods };
}

/** An HTTP GET from a namespace: the body, or an Error's message prefixed with "error: ". */
export async function httpGet(lab: Lab, ns: string, url: string, timeoutMs = 3000): Promise<string> {
  const result = await lab.exec(ns, [process.execPath, HTTP_GET, url, String(timeoutMs)], { reject: false, timeoutMs: timeoutMs + 2000 });
  return result.exitCode === 0 ? result.stdout.trim() : `error: ${result.stderr.trim() || `exit ${result.exitCode}`}`;
}

/** The client addresses an HTTP server of the lab has logged. */
export function loggedClients(log: string): string[] {
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[1] ?? '');
}

/** A ClusterSnapshot-shaped description of the lab's "cluster" (pods, services, endpoints). */
export function labCluster(): {
  pods: { namespace: string; name: string; podIP: string }[];
  services: LabService[];
} {
  return {
    pods: Object.values(PODS).map((pod) => ({ namespace: pod.namespace, name: pod.name, podIP: pod.ip })),
    services: [...SERVICES],
  };
}
