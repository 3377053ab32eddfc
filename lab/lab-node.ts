import fs from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { KubeApi, type KubeCredentials } from './kube-api.js';
import { LabKubelet, type KubeletOptions } from './kubelet.js';
import { Lab, type LabProcess } from './netns.js';

/**
 * The lab node as a program of its own (so that a lab left running keeps its node): the real
 * kube-proxy in iptables mode in the node's network namespace, and the lab's kubelet
 * (lab/kubelet.ts) with the node's credentials (system:node:<name>, in system:nodes, as the API
 * server's Node authorizer expects). Runs until SIGTERM or SIGINT, then stops every pod and
 * kube-proxy. Logs go to stderr.
 *
 * Usage: node lab-node.js CONFIG.json
 */

export interface LabNodeConfig {
  credentials: KubeCredentials;
  nodeName: string;
  /** Prefix of the pods' network namespaces. */
  prefix: string;
  rootDir: string;
  network: KubeletOptions['network'];
  apiService: KubeletOptions['apiService'];
  volumeSyncPeriodMs: number;
  blockApi: boolean;
  containerPath: string;
  /** Environment every "image" sets (e.g. LOG_LEVEL=debug); the pod's own env overrides it. */
  imageEnv?: Record<string, string>;
  kubeProxy: { binary: string; kubeconfig: string; clusterCidr: string; logFile: string };
}

export interface RunningLabNode {
  kubelet: LabKubelet;
  kubeProxy: LabProcess;
  stop(): Promise<void>;
}

/** The kube-proxy command line for a node in a network namespace of its own. */
export function kubeProxyArgv(config: Pick<LabNodeConfig, 'kubeProxy' | 'nodeName' | 'network'>): string[] {
  return [
    config.kubeProxy.binary,
    `--kubeconfig=${config.kubeProxy.kubeconfig}`,
    '--proxy-mode=iptables',
    `--hostname-override=${config.nodeName}`,
    `--bind-address=${config.network.nodeAddress}`,
    `--cluster-cidr=${config.kubeProxy.clusterCidr}`,
    '--nodeport-addresses=primary',
    // The conntrack table and its timeouts belong to the whole machine: leave them as they are.
    '--conntrack-max-per-core=0',
    '--conntrack-tcp-timeout-established=0',
    '--conntrack-tcp-timeout-close-wait=0',
    // Both listen inside the node's network namespace only.
    `--healthz-bind-address=${config.network.nodeAddress}:10256`,
    `--metrics-bind-address=${config.network.nodeAddress}:10249`,
    // Service changes applied at once (the default waits up to a second between syncs).
    '--iptables-min-sync-period=0s',
  ];
}

export function startLabNode(config: LabNodeConfig, log: (line: string) => void): RunningLabNode {
  const lab = new Lab(config.prefix);
  const api = new KubeApi(config.credentials);
  const kubeProxy = lab.spawn(config.network.nodeNetns, kubeProxyArgv(config), { logFile: config.kubeProxy.logFile });
  const kubelet = new LabKubelet({
    api,
    nodeName: config.nodeName,
    lab,
    rootDir: config.rootDir,
    network: config.network,
    apiService: config.apiService,
    volumeSyncPeriodMs: config.volumeSyncPeriodMs,
    blockApi: config.blockApi,
    containerPath: config.containerPath,
    imageEnv: config.imageEnv,
    log,
  });
  kubelet.start();
  return {
    kubelet,
    kubeProxy,
    stop: async () => {
      await kubelet.stop();
      await lab.stop(kubeProxy);
      await lab.cleanup();
      api.close();
      fs.rmSync(config.rootDir, { recursive: true, force: true });
    },
  };
}

async function main(configFile: string): Promise<void> {
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as LabNodeConfig;
  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const node = startLabNode(config, log);
  log(`lab node ${config.nodeName} up: kube-proxy (pid ${node.kubeProxy.child.pid ?? '?'}) and kubelet`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log(`lab node ${config.nodeName}: stopping its pods and kube-proxy`);
  await node.stop();
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const configFile = process.argv[2];
  if (configFile === undefined) {
    process.stderr.write('usage: lab-node CONFIG.json\n');
    process.exitCode = 2;
  } else {
    main(configFile).catch((error: unknown) => {
      process.stderr.write(`lab node: ${errorMessage(error)}\n`);
      process.exitCode = 1;
    });
  }
}
