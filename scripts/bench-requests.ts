import fs from 'node:fs';
import path from 'node:path';
import { snapshotTarget, waitForChecks } from '../lab/checks.js';
import { README_SOURCES, generateRules, prepareConnector, publishRules, startForwarder, startGateway, teardownGateway } from '../lab/connector.js';
import { Lab, PACKAGE_ROOT } from '../lab/netns.js';
import { startOriginalPath } from '../lab/original.js';
import { ADDRESSES, PODS, SERVICES, buildTopology, type Topology } from '../lab/topology.js';
import { percentile } from './stats.js';

/**
 * Short requests through the tunnels, in the end-to-end lab: COUNT sequential HTTP/1.0 requests,
 * each on a new connection, whose reply the server writes in two parts (headers, then body) with
 * Nagle's algorithm on, as `python -m SimpleHTTPServer` does. Both directions, three ways in one
 * run:
 * - direct: no tunnel (the pod reaches the external server through the node's masquerade, the
 *   external server reaches the pod through a route via the node);
 * - the original's path: its ssh commands, its gateway namespaces and sshd, its nat rules;
 * - this product's: bin/gateway and bin/forwarder.
 * The original's path is measured first, so that nothing this product tunes is in place yet.
 * The client runs with V8's optimizing compiler off, as the lab's servers do: its compiles, on a
 * 2-core machine, held single requests 1-2 ms on any path, tunnel or not (a client and server on
 * loopback, no tunnel: p99 2.0 ms with it, 0.95 ms without), and the tail measured the client.
 */

export interface RequestTimes {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  over10Ms: number;
}

export interface RequestPath {
  path: 'direct' | 'original' | 'forwarder';
  /** pod -> external server (through -L), external server -> pod (through -R). */
  toExternal: RequestTimes;
  toPod: RequestTimes;
}

export interface RequestMeasurement {
  paths: RequestPath[];
}

const REQUEST_CLIENT = path.join(PACKAGE_ROOT, 'lab', 'request-client.mjs');

export function summarize(times: readonly number[]): RequestTimes {
  return {
    count: times.length,
    p50Ms: percentile(times, 0.5),
    p99Ms: percentile(times, 0.99),
    maxMs: Math.max(...times),
    over10Ms: times.filter((time) => time > 10).length,
  };
}

async function requests(lab: Lab, ns: string, host: string, port: number, count: number): Promise<RequestTimes> {
  const result = await lab.exec(ns, [process.execPath, '--no-opt', REQUEST_CLIENT, host, String(port), String(count)], { timeoutMs: 600_000 });
  return summarize(JSON.parse(result.stdout) as number[]);
}

/** Both directions: pod1 -> the external server, and the external server -> pod1. */
async function bothWays(lab: Lab, topology: Topology, count: number, target: { external: [string, number]; pod: [string, number] }): Promise<Omit<RequestPath, 'path'>> {
  const toExternal = await requests(lab, topology.pods.pod1.netns, ...target.external, count);
  const toPod = await requests(lab, topology.external, ...target.pod, count);
  return { toExternal, toPod };
}

export async function benchRequests(count = 1000): Promise<RequestMeasurement> {
  const lab = new Lab('k8xbr');
  try {
    const topology = await buildTopology(lab);
    const forwarderService = SERVICES.find((service) => service.name === PODS.forwarder.name)!;
    const throughTunnels = { external: [forwarderService.clusterIP, forwarderService.port], pod: [ADDRESSES.sourceIPs[0], 80] } as { external: [string, number]; pod: [string, number] };
    const paths: RequestPath[] = [];

    // Without a tunnel the external server needs a route to the pods (via the node).
    await lab.exec(topology.external, ['ip', 'route', 'add', '10.244.0.0/24', 'via', ADDRESSES.node]);
    paths.push({ path: 'direct', ...(await bothWays(lab, topology, count, { external: [ADDRESSES.external, 8000], pod: [PODS.pod1.ip, 80] })) });
    await lab.exec(topology.external, ['ip', 'route', 'del', '10.244.0.0/24', 'via', ADDRESSES.node]);

    const connector = prepareConnector(lab);
    const rules = await generateRules(connector, README_SOURCES);
    const key = await lab.sshKeypair();

    const original = await startOriginalPath(lab, topology, rules, key);
    const checks = await waitForChecks(lab, snapshotTarget(topology), README_SOURCES, 30_000);
    if (!checks.every((check) => check.ok)) throw new Error(`the original's path did not come up: ${JSON.stringify(checks)}`);
    paths.push({ path: 'original', ...(await bothWays(lab, topology, count, throughTunnels)) });
    await original.stop();

    publishRules(connector, rules);
    const logs = path.join(lab.tempDir, 'logs');
    fs.mkdirSync(logs, { recursive: true });
    const gateway = await startGateway(lab, topology, connector, key, path.join(logs, 'gateway.log'));
    const forwarder = startForwarder(lab, topology, connector, key, path.join(logs, 'forwarder.log'));
    try {
      const ours = await waitForChecks(lab, snapshotTarget(topology), README_SOURCES, 30_000);
      if (!ours.every((check) => check.ok)) throw new Error(`the lab did not come up: ${JSON.stringify(ours)}`);
      paths.push({ path: 'forwarder', ...(await bothWays(lab, topology, count, throughTunnels)) });
    } finally {
      await lab.stop(forwarder);
      await lab.stop(gateway);
      await teardownGateway(lab, topology, connector).catch(() => undefined);
    }
    return { paths };
  } finally {
    await lab.cleanup();
  }
}
