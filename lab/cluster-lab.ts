import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, type RunResult } from '../lib/exec.js';
import { ControlPlane, type ControlPlaneInfo } from './control-plane.js';
import type { KubeBinaries } from './kube-binaries.js';
import { podNetnsName, containerLogFile } from './kubelet.js';
import type { LabNodeConfig } from './lab-node.js';
import { PACKAGE_ROOT, stopProcessGroup, waitFor, type Lab, type LabProcess } from './netns.js';
import { ADDRESSES, type Network } from './topology.js';

/**
 * The lab as a small real cluster, on top of the lab's network (lab/topology.ts):
 * - the control plane (lab/control-plane.ts) runs on this machine, its API server on 127.0.0.1 (so
 *   kubectl works from the machine's own shell); a control-plane host on the LAN (192.168.122.5)
 *   relays its address to it, as a load balancer in front of the API servers would, and the
 *   `kubernetes` Service leads there;
 * - the lab node (lab/lab-node.ts, a program of its own) runs the real kube-proxy in the node's
 *   network namespace and plays kubelet for the pods the scheduler binds to it.
 */

export const CONTROL_PLANE_HOST = '192.168.122.5';
/** The cluster's pod network (the node's pod CIDR is its first /24). */
export const CLUSTER_CIDR = '10.244.0.0/16';
/** kubelet's default --sync-frequency: how long a ConfigMap change may take to reach a volume. */
export const KUBELET_SYNC_PERIOD_MS = 60_000;

/** How long the lab node may take to stop its pods and itself before it is killed (a pod's default grace period is 30 s). */
const LAB_NODE_STOP_MS = 45_000;

const RELAY = path.join(PACKAGE_ROOT, 'lab', 'relay.mjs');
const LAB_NODE = path.join(PACKAGE_ROOT, 'dist', 'lab', 'lab-node.js');

export interface ClusterLabOptions {
  binaries: KubeBinaries;
  /** The lab node's volume sync period (default kubelet's, 1 min). */
  volumeSyncPeriodMs?: number;
  /** Pods cannot reach the API server (the forwarder then has only its mounted file). */
  blockApi?: boolean;
  /** Environment every container gets unless its pod sets it (as an image's ENV would). */
  imageEnv?: Record<string, string>;
  /**
   * The lab may be left running (detach): the control plane's processes do not end with this
   * program, and every process of the lab writes to a log file rather than a pipe.
   */
  keep?: boolean;
  log?: (line: string) => void;
}

/** A cluster lab left running (ClusterLab.detach): what removeKeptClusterLab needs, as JSON. */
export interface KeptClusterLab {
  plane: ControlPlaneInfo;
  nodeRootDir: string;
  /** Process groups of the lab node and of the API relays. */
  labNodePid: number;
  relayPids: number[];
}

export interface ClusterLab {
  plane: ControlPlane;
  /** The control-plane host's network namespace (where programs reach the API at `labServer`). */
  controlPlaneHost: string;
  /** The API server as the LAN reaches it: https://192.168.122.5:PORT. */
  labServer: string;
  nodeRootDir: string;
  labNode: LabProcess;
  /** kubectl of the cluster's version, as the administrator, from this machine. */
  kubectl(args: readonly string[], options?: { input?: string; reject?: boolean }): Promise<RunResult>;
  /** A kubeconfig for `user` that reaches the API from the LAN. */
  labKubeconfig(user: string, groups?: readonly string[]): Promise<string>;
  /** The network namespace and container log of a pod, once the lab node runs it. */
  pod(namespace: string, name: string): Promise<{ netns: string; ip: string; log: (container: string) => string }>;
  stop(): Promise<void>;
  /**
   * Lets the control plane outlive this program (started with `keep`); the lab node and the
   * relays are the caller's Lab's processes (Lab.detachAll). Returns what removeKeptClusterLab needs.
   */
  detach(): Promise<KeptClusterLab>;
}

/** Starts the control plane, the relay to it from the LAN and the lab node. */
export async function startClusterLab(lab: Lab, network: Network, options: ClusterLabOptions): Promise<ClusterLab> {
  const log = options.log ?? (() => undefined);
  const controlPlaneHost = network.hosts.cp;
  if (controlPlaneHost === undefined) throw new Error(`the network has no control-plane host (build it with hosts: { cp: '${CONTROL_PLANE_HOST}' })`);
  const plane = await ControlPlane.start({
    binaries: options.binaries,
    keep: options.keep,
    advertiseAddress: CONTROL_PLANE_HOST,
    node: { address: ADDRESSES.node, finishPodDeletions: false },
    log,
  });
  try {
    const port = new URL(plane.info.server).port;
    const labServer = `https://${CONTROL_PLANE_HOST}:${port}`;
    const socket = path.join(lab.tempDir, 'kube-apiserver.sock');
    const logs = path.join(plane.info.dir, 'logs');
    const relays = [
      lab.spawn(undefined, [process.execPath, RELAY, `unix:${socket}`, `127.0.0.1:${port}`], { logFile: path.join(logs, 'relay-host.log') }),
      lab.spawn(controlPlaneHost, [process.execPath, RELAY, `${CONTROL_PLANE_HOST}:${port}`, `unix:${socket}`], { logFile: path.join(logs, 'relay-cp.log') }),
    ];
    for (const relay of relays) await waitFor(() => (relay.output().includes('listening') ? true : undefined), 10_000, 'the API relay', relay);
    log(`the LAN reaches the API server at ${labServer} (relayed to ${plane.info.server})`);

    const admin = plane.access.admin;
    // The node IPAM controller's part: the node's pod CIDR.
    await admin.patch(`/api/v1/nodes/${plane.info.node.name}`, { spec: { podCIDR: ADDRESSES.podCidr, podCIDRs: [ADDRESSES.podCidr] } }, 'merge');
    const nodeRootDir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-node-`));
    const config: LabNodeConfig = {
      credentials: await plane.access.userCredentials(`system:node:${plane.info.node.name}`, ['system:nodes']),
      nodeName: plane.info.node.name,
      prefix: lab.prefix,
      rootDir: nodeRootDir,
      network: { nodeNetns: network.node, bridge: 'cni0', podCidr: ADDRESSES.podCidr, gateway: ADDRESSES.podGateway, nodeAddress: ADDRESSES.node },
      apiService: { host: '10.96.0.1', port: 443 },
      volumeSyncPeriodMs: options.volumeSyncPeriodMs ?? KUBELET_SYNC_PERIOD_MS,
      blockApi: options.blockApi ?? false,
      imageEnv: options.imageEnv,
      containerPath: [plane.info.kubernetesBinDir, path.dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
      kubeProxy: {
        binary: options.binaries.path('kube-proxy'),
        kubeconfig: await plane.access.userKubeconfig('system:kube-proxy', [], labServer),
        clusterCidr: CLUSTER_CIDR,
        logFile: path.join(logs, 'kube-proxy.log'),
      },
    };
    const configFile = path.join(plane.info.dir, 'lab-node.json');
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
    const labNode = lab.spawn(undefined, [process.execPath, LAB_NODE, configFile], { logFile: path.join(logs, 'lab-node.log') });
    // kube-proxy routes the `kubernetes` Service to the relay once it has synced.
    await waitFor(
      async () => {
        if (labNode.child.exitCode !== null) throw new Error(`the lab node exited:\n${labNode.output()}`);
        const saved = await lab.exec(network.node, ['iptables-save', '-t', 'nat'], { reject: false });
        return saved.stdout.includes(`--to-destination ${CONTROL_PLANE_HOST}:${port}`) ? true : undefined;
      },
      60_000,
      'kube-proxy to route the kubernetes Service',
      labNode,
    );
    log(`lab node ${plane.info.node.name} up: kube-proxy routes the Services, the lab's kubelet runs the pods`);

    const kubectl = (args: readonly string[], runOptions: { input?: string; reject?: boolean } = {}): Promise<RunResult> =>
      run(plane.access.kubectl, ['--kubeconfig', plane.info.adminKubeconfig, ...args], { input: runOptions.input, reject: runOptions.reject, env: { HOME: plane.info.dir } });
    return {
      plane,
      controlPlaneHost,
      labServer,
      nodeRootDir,
      labNode,
      kubectl,
      labKubeconfig: (user, groups = []) => plane.access.userKubeconfig(user, groups, labServer),
      pod: async (namespace, name) => {
        const found = await waitFor(
          async () => {
            const pod = await admin.find(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`);
            const ip = pod?.status?.podIP;
            return pod?.status?.phase === 'Running' && typeof ip === 'string' ? { uid: pod.metadata.uid ?? '', ip } : undefined;
          },
          120_000,
          `pod ${namespace}/${name} to run`,
          labNode,
        );
        return { netns: podNetnsName(lab.prefix, found.uid), ip: found.ip, log: (container) => containerLogFile(nodeRootDir, found.uid, container) };
      },
      stop: async () => {
        // The lab node stops its pods (each within its grace period), kube-proxy, and removes what it made.
        await lab.stop(labNode, 'SIGTERM', LAB_NODE_STOP_MS);
        for (const relay of relays) await lab.stop(relay);
        await plane.stop();
        fs.rmSync(nodeRootDir, { recursive: true, force: true });
      },
      detach: async () => {
        if (!options.keep) throw new Error('the cluster lab was not started to be kept (keep: true)');
        const info = await plane.detach();
        const pid = (handle: LabProcess): number => handle.child.pid ?? 0;
        return { plane: info, nodeRootDir, labNodePid: pid(labNode), relayPids: relays.map(pid) };
      },
    };
  } catch (error) {
    await plane.stop();
    throw error;
  }
}

/**
 * Removes a cluster lab left running: the lab node first (SIGTERM: it stops its pods, their
 * namespaces and kube-proxy; SIGKILL after `nodeGraceMs`), then the relays and the control plane,
 * and their folders.
 */
export async function removeKeptClusterLab(kept: KeptClusterLab, nodeGraceMs = 45_000): Promise<void> {
  if (kept.labNodePid > 0) await stopProcessGroup(kept.labNodePid, nodeGraceMs);
  await Promise.all(kept.relayPids.filter((pid) => pid > 0).map((pid) => stopProcessGroup(pid)));
  await ControlPlane.remove(kept.plane);
  fs.rmSync(kept.nodeRootDir, { recursive: true, force: true });
}
