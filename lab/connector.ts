import fs from 'node:fs';
import path from 'node:path';
import { serializeSnapshot, type ClusterSnapshot } from '../controller/snapshot.js';
import { dumpYaml } from '../lib/yaml.js';
import { writeConfigMapVolume } from './configmap.js';
import { PACKAGE_ROOT, waitFor, type Lab, type LabProcess } from './netns.js';
import { ADDRESSES, PODS, SERVICES, type Network, type Topology } from './topology.js';
import { run } from '../lib/exec.js';

/**
 * Runs the connector in the lab: the README's ExternalService, rules from
 * `bin/controller genrule --snapshot` (the lab has no API server), bin/gateway on the gateway
 * host and bin/forwarder in the forwarder pod, each fed the rules the way production feeds them
 * (the gateway's rules file replaced by rename, the forwarder's data file behind a ConfigMap-style
 * `..data` symlink).
 */

export const BIN = (name: 'controller' | 'gateway' | 'forwarder'): string => path.join(PACKAGE_ROOT, 'bin', name);

export interface ExternalServiceSource {
  namespace: string;
  name: string;
  sourceIP: string;
}

export const README_SOURCES: readonly ExternalServiceSource[] = [
  { namespace: 'ns1', name: 'my-service1', sourceIP: ADDRESSES.sourceIPs[0] },
  { namespace: 'ns2', name: 'my-service2', sourceIP: ADDRESSES.sourceIPs[1] },
];

export function externalServiceYaml(sources: readonly ExternalServiceSource[]): string {
  return dumpYaml({
    apiVersion: 'externalservice.example.com/v1alpha1',
    kind: 'ExternalService',
    metadata: { name: PODS.forwarder.name },
    spec: {
      targetIP: ADDRESSES.external,
      sources: sources.map((source) => ({ service: { namespace: source.namespace, name: source.name }, sourceIP: source.sourceIP })),
      ports: [{ protocol: 'TCP', port: 8000, targetPort: 8000 }],
    },
  });
}

/** The lab's "cluster" as the controller would read it. */
export function labSnapshot(): ClusterSnapshot {
  return {
    pods: [
      {
        namespace: PODS.forwarder.namespace,
        name: PODS.forwarder.name,
        podIP: PODS.forwarder.ip,
        labels: { externalService: PODS.forwarder.name },
      },
    ],
    services: SERVICES.map((service) => ({
      namespace: service.namespace,
      name: service.name,
      type: 'ClusterIP',
      clusterIP: service.clusterIP,
      ports: [{ name: undefined, protocol: 'TCP', port: service.port, targetPort: service.targetPort }],
      selector: {},
      labels: {},
      annotations: {},
    })),
    endpoints: SERVICES.map((service) => ({ namespace: service.namespace, name: service.name, readyIPs: [service.endpoint] })),
  };
}

export interface Connector {
  dir: string;
  confDir: string;
  rulesFile: string;
  dataDir: string;
  dataFile: string;
  ipsConf: string;
  runDir: string;
  netnsPrefix: string;
  gateway?: LabProcess;
  forwarder?: LabProcess;
}

export function prepareConnector(lab: Lab): Connector {
  const dir = path.join(lab.tempDir, 'connector');
  const connector: Connector = {
    dir,
    confDir: path.join(dir, 'conf'),
    rulesFile: path.join(dir, 'gateway', 'rules.yaml'),
    dataDir: path.join(dir, 'configmap'),
    dataFile: path.join(dir, 'configmap', 'data.yaml'),
    ipsConf: path.join(dir, 'gateway', 'ips.conf'),
    runDir: path.join(dir, 'gateway', 'run'),
    netnsPrefix: `${lab.prefix}ns`,
  };
  for (const folder of [connector.confDir, path.dirname(connector.rulesFile), connector.dataDir, connector.runDir]) {
    fs.mkdirSync(folder, { recursive: true });
  }
  fs.writeFileSync(connector.ipsConf, `# the gateway's spare IPs\n${ADDRESSES.sourceIPs.join('\n')}\n`);
  fs.writeFileSync(path.join(dir, 'snapshot.json'), serializeSnapshot(labSnapshot()));
  return connector;
}

/** Writes the ExternalService and returns the rules `bin/controller genrule --snapshot` prints. */
export async function generateRules(connector: Connector, sources: readonly ExternalServiceSource[]): Promise<string> {
  const file = path.join(connector.confDir, `${PODS.forwarder.name}.yaml`);
  fs.writeFileSync(`${file}.tmp`, externalServiceYaml(sources));
  fs.renameSync(`${file}.tmp`, file);
  const result = await run(BIN('controller'), ['genrule', '--snapshot', path.join(connector.dir, 'snapshot.json'), connector.confDir], {
    env: { NO_COLOR: '1' },
  });
  return result.stdout;
}

/** Publishes rules as the controller does: gateway file by rename, ConfigMap by `..data` swap. */
export function publishRules(connector: Connector, rules: string): void {
  fs.writeFileSync(`${connector.rulesFile}.tmp`, rules);
  fs.renameSync(`${connector.rulesFile}.tmp`, connector.rulesFile);
  writeConfigMapVolume(connector.dataDir, { 'data.yaml': rules });
}

/**
 * The settings bin/gateway gets in the lab (every command: run, status, teardown), with
 * `key` as the one authorized key (copied next to the rules file).
 */
export function gatewayEnv(connector: Connector, key: { publicKey: string }): NodeJS.ProcessEnv {
  const authorizedKeys = path.join(connector.dir, 'gateway', 'authorized_keys');
  fs.copyFileSync(key.publicKey, authorizedKeys);
  return {
    NO_COLOR: '1',
    NETMASK: String(ADDRESSES.netmask),
    DEFAULT_GATEWAY: ADDRESSES.router,
    NIC: 'eth0',
    RUN_DIR: connector.runDir,
    NETNS_PREFIX: connector.netnsPrefix,
    AUTHORIZED_KEYS_FILE: authorizedKeys,
    HOST_KEY_DIR: connector.runDir,
  };
}

/** Starts the bin/gateway loop on the gateway host (in a mount namespace that shares /run/netns) and returns at once. */
export function spawnGateway(lab: Lab, topology: Network, connector: Connector, key: { publicKey: string }, logFile?: string, env: NodeJS.ProcessEnv = {}): LabProcess {
  const handle = lab.spawn(topology.gatewayHost, [BIN('gateway'), '--rules-file', connector.rulesFile, connector.ipsConf], {
    hostLike: true,
    logFile,
    env: { ...gatewayEnv(connector, key), ...env },
  });
  connector.gateway = handle;
  return handle;
}

/** Starts bin/gateway on the gateway host; resolves once the sshds of the lab's source IPs accept connections. */
export async function startGateway(
  lab: Lab,
  topology: Network,
  connector: Connector,
  key: { publicKey: string },
  logFile?: string,
  env: NodeJS.ProcessEnv = {},
): Promise<LabProcess> {
  const handle = spawnGateway(lab, topology, connector, key, logFile, env);
  for (const ip of ADDRESSES.sourceIPs) {
    await waitFor(async () => ((await lab.canConnect(topology.external, ip, 22)) ? true : undefined), 20_000, `the gateway's sshd on ${ip}`, handle);
  }
  return handle;
}

/** Starts bin/forwarder in the forwarder pod, in a PID namespace of its own; `env` adds to or overrides its settings. */
export function startForwarder(lab: Lab, topology: Topology, connector: Connector, key: { privateKey: string }, logFile?: string, env: NodeJS.ProcessEnv = {}): LabProcess {
  const handle = lab.spawn(topology.pods.forwarder.netns, [BIN('forwarder')], {
    pidns: true,
    logFile,
    env: {
      NO_COLOR: '1',
      EXTERNAL_SERVICE_NAME: PODS.forwarder.name,
      DATA_FILE: connector.dataFile,
      SSH_KEY: key.privateKey,
      SSH_KNOWN_HOSTS: '/dev/null',
      ...env,
    },
  });
  connector.forwarder = handle;
  return handle;
}

/** Runs `bin/gateway teardown` on the gateway host. */
export async function teardownGateway(lab: Lab, topology: Pick<Network, 'gatewayHost'>, connector: Pick<Connector, 'ipsConf' | 'runDir' | 'netnsPrefix'>): Promise<string> {
  const handle = lab.spawn(topology.gatewayHost, [BIN('gateway'), 'teardown', connector.ipsConf], {
    hostLike: true,
    env: { NO_COLOR: '1', RUN_DIR: connector.runDir, NETNS_PREFIX: connector.netnsPrefix, NETMASK: '24', DEFAULT_GATEWAY: ADDRESSES.router, NIC: 'eth0' },
  });
  const code = await handle.exited;
  if (code !== 0) throw new Error(`gateway teardown failed (exit ${code}): ${handle.output()}`);
  return handle.output();
}
