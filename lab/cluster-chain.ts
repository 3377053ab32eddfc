import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { dumpYaml } from '../lib/yaml.js';
import type { ContainerInitSpec } from './container-init.js';
import { BIN, externalServiceYaml, prepareConnector, startGateway, teardownGateway, type Connector, type ExternalServiceSource } from './connector.js';
import { connectivityChecks, type Check, type ChecksTarget } from './checks.js';
import { CONTROL_PLANE_HOST, removeKeptClusterLab, startClusterLab, type ClusterLab, type KeptClusterLab } from './cluster-lab.js';
import type { KubeBinaries } from './kube-binaries.js';
import { PACKAGE_ROOT, stopProcessGroup, waitFor, type Lab, type LabProcess } from './netns.js';
import { ADDRESSES, PODS, buildNetwork, httpGet, type Network } from './topology.js';

/**
 * The whole chain as a user deploys it, in the cluster lab (lab/cluster-lab.ts): the README's app
 * pods and services created through the API, bin/controller running its loop on a conf directory
 * (as the least-privileged user of controller/rbac.yaml, from the control-plane host), the
 * forwarder pod it creates run by the lab node, and bin/gateway on the gateway host, which
 * receives the rules over the node's own sshd (the controller's scp and rename).
 */

const CONTAINER_INIT = path.join(PACKAGE_ROOT, 'dist', 'lab', 'container-init.js');
const RBAC_FILE = path.join(PACKAGE_ROOT, 'controller', 'rbac.yaml');
const CONTROLLER_USER = 'k8s-ext-controller';
const FORWARDER_NAMESPACE = 'external-services';

/** The README's app pods: an HTTP server on port 80 behind a Service in each of ns1 and ns2. */
export function appManifests(): string {
  const objects = [1, 2].flatMap((index) => {
    const namespace = `ns${index}`;
    const pod = PODS[`pod${index}` as 'pod1' | 'pod2'];
    return [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: pod.name, namespace, labels: { run: pod.name } },
        spec: { containers: [{ name: pod.name, image: 'python:2.7', command: ['python', '-m', 'SimpleHTTPServer', '80'] }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `my-service${index}`, namespace },
        spec: { selector: { run: pod.name }, ports: [{ protocol: 'TCP', port: 80, targetPort: 80 }] },
      },
    ];
  });
  return objects.map((object) => dumpYaml(object)).join('---\n');
}

export interface ClusterChainOptions {
  binaries: KubeBinaries;
  /** The lab node's volume sync period (default kubelet's). */
  volumeSyncPeriodMs?: number;
  /** Pods cannot reach the API server: the forwarder has only its mounted data file. */
  blockApi?: boolean;
  /** LOG_LEVEL of the controller, the gateway and the forwarder (default info). */
  logLevel?: 'debug' | 'info';
  /** The chain may be left running (ClusterChain.detach). */
  keep?: boolean;
  log?: (line: string) => void;
}

/** A chain left running (ClusterChain.detach), as JSON: what removeKeptClusterChain needs. */
export interface KeptClusterChain {
  /** The Lab's temp folder (conf directory, keys, logs, the gateway's files). */
  tempDir: string;
  logsDir: string;
  cluster: KeptClusterLab;
  controlPlaneHost: string;
  gatewayHost: string;
  connector: Omit<Connector, 'gateway' | 'forwarder'>;
  controllerKubeconfig: string;
  /** Process groups of the controller loop and of bin/gateway (0: not running). */
  controllerPid: number;
  gatewayPid: number;
  /** The gateway host's own sshd (a daemon: its pid file). */
  nodeSshdPidFile: string;
  /** Every process group the Lab had started (relays, lab node, servers, controller, gateway). */
  pids: number[];
}

export interface ClusterChain {
  network: Network;
  cluster: ClusterLab;
  connector: Connector;
  /** The controller's kubeconfig (the least-privileged user, reaching the API from the LAN). */
  controllerKubeconfig: string;
  logsDir: string;
  controller?: LabProcess;
  startController(): Promise<LabProcess>;
  stopController(): Promise<void>;
  /** Writes the ExternalService file in the conf directory (by rename, as an editor saves). */
  editConf(sources: readonly ExternalServiceSource[]): void;
  /** Where the checks run: the app pods and the forwarder pod as the lab node runs them now. */
  checksTarget(): Promise<ChecksTarget>;
  /** `bin/controller teardown` then `bin/gateway teardown`; returns their output. */
  teardown(): Promise<string>;
  /**
   * Leaves the whole chain running after this program ends (started with `keep`): the control
   * plane, the lab node with its pods, the gateway, the controller loop and the servers. Returns
   * what removeKeptClusterChain needs to remove it later.
   */
  detach(): Promise<KeptClusterChain>;
}

/** `bin/controller teardown CONF_DIR` on the control-plane host, as the controller's user; returns its output. */
async function teardownController(lab: Lab, where: { controlPlaneHost: string; confDir: string; kubeconfig: string; kubectl: string }): Promise<string> {
  const teardown = lab.spawn(where.controlPlaneHost, [BIN('controller'), 'teardown', where.confDir], {
    env: { NO_COLOR: '1', KUBECONFIG: where.kubeconfig, PATH: `${path.dirname(where.kubectl)}:${process.env.PATH ?? ''}` },
  });
  const code = await teardown.exited;
  if (code !== 0) throw new Error(`bin/controller teardown failed (exit ${code}): ${teardown.output()}`);
  return teardown.output();
}

/** Builds the network, the cluster lab, the app pods, the gateway host's sshd and bin/gateway. */
export async function startClusterChain(lab: Lab, options: ClusterChainOptions): Promise<ClusterChain> {
  const log = options.log ?? (() => undefined);
  const network = await buildNetwork(lab, { hosts: { cp: CONTROL_PLANE_HOST } });
  const logLevel: Record<string, string> = options.logLevel === undefined ? {} : { LOG_LEVEL: options.logLevel };
  const cluster = await startClusterLab(lab, network, {
    binaries: options.binaries,
    volumeSyncPeriodMs: options.volumeSyncPeriodMs,
    blockApi: options.blockApi,
    imageEnv: logLevel,
    keep: options.keep,
    log,
  });
  const logsDir = path.join(lab.tempDir, 'logs');
  fs.mkdirSync(logsDir, { recursive: true });
  await cluster.kubectl(['apply', '-f', '-'], { input: appManifests() });
  await cluster.kubectl(['apply', '-f', RBAC_FILE]);
  const controllerKubeconfig = await cluster.labKubeconfig(CONTROLLER_USER);

  const connector = prepareConnector(lab);
  // The controller's key: it logs in to the gateway node with it and stores it for the forwarders.
  const key = await lab.sshKeypair('controller_ssh_key');
  // scp speaks SFTP: the node's sshd offers it, as a distribution's sshd_config does.
  const nodeSshd = await lab.startSshd(network.gatewayHost, { listenAddress: ADDRESSES.gatewayHost, authorizedKeys: [key.publicKey], extraConfig: ['Subsystem sftp internal-sftp'] });
  // The controller trusts the gateway node's host key (its known_hosts, in its own ~/.ssh).
  const controllerSsh = path.join(lab.tempDir, 'controller-ssh');
  fs.mkdirSync(controllerSsh, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(controllerSsh, 'known_hosts'), `${ADDRESSES.gatewayHost} ${fs.readFileSync(nodeSshd.hostPublicKey, 'utf8').trim()}\n`);
  await startGateway(lab, network, connector, key, path.join(logsDir, 'gateway.log'), logLevel);

  const chain: ClusterChain = {
    network,
    cluster,
    connector,
    controllerKubeconfig,
    logsDir,
    startController: async () => {
      const spec: ContainerInitSpec = {
        layersDir: path.join(lab.tempDir, 'controller-layers'),
        mounts: [{ source: controllerSsh, target: '/root/.ssh', readOnly: true }],
        argv: [BIN('controller'), connector.confDir],
        env: {
          PATH: [path.dirname(cluster.plane.access.kubectl), path.dirname(process.execPath), process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':'),
          HOME: '/root',
          NO_COLOR: '1',
          KUBECONFIG: controllerKubeconfig,
          SSH_KEY_PATH: key.privateKey,
          GATEWAY_NODE_IP: ADDRESSES.gatewayHost,
          CONFIG_PATH_ON_GATEWAY_NODE: connector.rulesFile,
          ...logLevel,
        },
        privileged: true,
        // The lab's files (conf directory, key, kubeconfig) live under /run: keep it.
        emptyDirs: [],
      };
      const specFile = path.join(lab.tempDir, 'controller.json');
      fs.writeFileSync(specFile, JSON.stringify(spec, null, 2), { mode: 0o600 });
      const handle = lab.spawn(
        network.hosts.cp,
        ['unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child=SIGTERM', '--mount-proc', '--', process.execPath, CONTAINER_INIT, specFile],
        { logFile: path.join(logsDir, 'controller.log') },
      );
      chain.controller = handle;
      return handle;
    },
    stopController: async () => {
      if (chain.controller) await lab.stop(chain.controller);
      chain.controller = undefined;
    },
    editConf: (sources) => {
      const file = path.join(connector.confDir, `${PODS.forwarder.name}.yaml`);
      fs.writeFileSync(`${file}.tmp`, externalServiceYaml(sources));
      fs.renameSync(`${file}.tmp`, file);
    },
    checksTarget: async () => {
      const [pod1, pod2, forwarder] = await Promise.all([
        cluster.pod('ns1', PODS.pod1.name),
        cluster.pod('ns2', PODS.pod2.name),
        cluster.pod(FORWARDER_NAMESPACE, PODS.forwarder.name),
      ]);
      // The controller creates the Service after the pod (and the pod's access and ConfigMap before it).
      const serviceIP = await waitFor(
        async () => {
          const service = await cluster.kubectl(['get', 'service', PODS.forwarder.name, '-n', FORWARDER_NAMESPACE, '--ignore-not-found', '-o', 'jsonpath={.spec.clusterIP}']);
          return service.stdout.trim() || undefined;
        },
        30_000,
        `the Service ${FORWARDER_NAMESPACE}/${PODS.forwarder.name}`,
      );
      return {
        pods: {
          pod1: { name: PODS.pod1.name, namespace: 'ns1', netns: pod1.netns, log: pod1.log(PODS.pod1.name) },
          pod2: { name: PODS.pod2.name, namespace: 'ns2', netns: pod2.netns, log: pod2.log(PODS.pod2.name) },
        },
        external: network.external,
        externalLog: network.externalLog,
        forwarder: { name: PODS.forwarder.name, namespace: FORWARDER_NAMESPACE, serviceIP, port: 8000, podIP: forwarder.ip },
      };
    },
    teardown: async () => {
      const output: string[] = [];
      output.push(await teardownController(lab, { controlPlaneHost: cluster.controlPlaneHost, confDir: connector.confDir, kubeconfig: controllerKubeconfig, kubectl: cluster.plane.access.kubectl }));
      if (connector.gateway) await lab.stop(connector.gateway);
      output.push(await teardownGateway(lab, network, connector));
      return output.join('');
    },
    detach: async () => {
      const keptCluster = await cluster.detach();
      const { gateway, forwarder: _forwarder, ...files } = connector;
      return {
        tempDir: lab.tempDir,
        logsDir,
        cluster: keptCluster,
        controlPlaneHost: cluster.controlPlaneHost,
        gatewayHost: network.gatewayHost,
        connector: files,
        controllerKubeconfig,
        controllerPid: chain.controller?.child.pid ?? 0,
        gatewayPid: gateway?.child.pid ?? 0,
        nodeSshdPidFile: nodeSshd.pidFile,
        pids: lab.detachAll(),
      };
    },
  };
  return chain;
}

/**
 * Removes a chain left running (ClusterChain.detach), the product's way first: the controller loop
 * stops and `bin/controller teardown` deletes what it made through the API (the lab node stops the
 * forwarder pod), the gateway stops and `bin/gateway teardown` removes its namespaces, addresses
 * and sshds; then the lab node (its pods, their namespaces, kube-proxy), the relays, the control
 * plane and the gateway host's sshd. Returns what went wrong on the way (the rest goes on); the
 * caller removes the lab's namespaces and `tempDir` (Lab.adoptLeftovers and cleanup).
 */
export async function removeKeptClusterChain(lab: Lab, kept: KeptClusterChain, log: (line: string) => void = () => undefined): Promise<string[]> {
  const problems: string[] = [];
  const attempt = async (what: string, action: () => Promise<unknown>): Promise<void> => {
    const started = performance.now();
    try {
      await action();
      log(`${what}: done (${Math.round(performance.now() - started)} ms)`);
    } catch (error) {
      problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  if (kept.controllerPid > 0) await attempt('stopping the controller loop', () => stopProcessGroup(kept.controllerPid));
  await attempt('bin/controller teardown', () =>
    teardownController(lab, { controlPlaneHost: kept.controlPlaneHost, confDir: kept.connector.confDir, kubeconfig: kept.controllerKubeconfig, kubectl: path.join(kept.cluster.plane.kubernetesBinDir, 'kubectl') }),
  );
  if (kept.gatewayPid > 0) await attempt('stopping bin/gateway', () => stopProcessGroup(kept.gatewayPid));
  await attempt('bin/gateway teardown', () => teardownGateway(lab, { gatewayHost: kept.gatewayHost }, kept.connector));
  await attempt('stopping the lab node (its pods, kube-proxy), the API relays and the control plane', () => removeKeptClusterLab(kept.cluster));
  await attempt("stopping the gateway host's sshd", async () => {
    if (!fs.existsSync(kept.nodeSshdPidFile)) return;
    // A daemon: the leader of a session and process group of its own.
    const pid = Number(fs.readFileSync(kept.nodeSshdPidFile, 'utf8').trim());
    if (pid > 1) await stopProcessGroup(pid);
  });
  return problems;
}

/**
 * Waits until the checks for `sources` pass; returns them and how long that took from `startedAt`
 * (performance.now() of the edit). Each round asks the API where the pods are now (the controller
 * may have recreated the forwarder pod).
 */
export async function waitForClusterChecks(
  lab: Lab,
  chain: ClusterChain,
  sources: readonly ExternalServiceSource[],
  timeoutMs: number,
  startedAt = performance.now(),
): Promise<{ checks: Check[]; elapsedMs: number }> {
  for (;;) {
    const target = await chain.checksTarget();
    const checks = await connectivityChecks(lab, target, sources, 1000);
    const elapsedMs = performance.now() - startedAt;
    if (checks.every((check) => check.ok) || elapsedMs > timeoutMs) return { checks, elapsedMs };
  }
}

/** One timed change: when the file was edited (wall clock, as the components' logs show it) and how long until the traffic changed. */
export interface ConfChangeTiming {
  editedAtMs: number;
  /** From the edit until the probe that saw the new behaviour returned. */
  elapsedMs: number;
  /** From the edit until that probe started (the change happened between the two). */
  lastProbeStartMs: number;
}

/**
 * The change as a user makes it: the ExternalService file edited, timed until the traffic of the
 * source that changes does what the new file says (my-pod2's request through the forwarder
 * fails once its source is dropped, and reaches the external server as its source IP once it is
 * back), probed continuously from my-pod2.
 */
export async function timeConfChange(lab: Lab, chain: ClusterChain, sources: readonly ExternalServiceSource[], timeoutMs: number): Promise<number> {
  return (await timeConfChangeDetail(lab, chain, sources, timeoutMs)).elapsedMs;
}

/** timeConfChange, with the edit's wall-clock time and the start of the probe that saw the change. */
export async function timeConfChangeDetail(lab: Lab, chain: ClusterChain, sources: readonly ExternalServiceSource[], timeoutMs: number): Promise<ConfChangeTiming> {
  const target = await chain.checksTarget();
  const url = `http://${target.forwarder.serviceIP}:${target.forwarder.port}/`;
  const enabled = sources.some((source) => source.sourceIP === ADDRESSES.sourceIPs[1]);
  const editedAtMs = Date.now();
  const started = performance.now();
  chain.editConf(sources);
  const lastProbeStartMs = await waitFor(
    async () => {
      const probeStart = performance.now() - started;
      const body = await httpGet(lab, target.pods.pod2.netns, url, 500);
      const changed = enabled ? body.endsWith(`saw you as ${ADDRESSES.sourceIPs[1]}`) : body.startsWith('error:');
      return changed ? probeStart : undefined;
    },
    timeoutMs,
    `the traffic of ${PODS.pod2.name} to change after the edit`,
  );
  return { editedAtMs, elapsedMs: performance.now() - started, lastProbeStartMs };
}
