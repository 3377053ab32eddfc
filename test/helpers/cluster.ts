import fs from 'node:fs';
import path from 'node:path';
import { expect, inject, vi } from 'vitest';
import { forwarderDocument, gatewayDocument } from '../../controller/desired.js';
import { ClusterAccess, type AuditEvent, type ControlPlaneInfo } from '../../lab/control-plane.js';
import type { KubeList, KubeObjectJson } from '../../lab/kube-api.js';
import { run, type RunResult } from '../../lib/exec.js';
import { parseRules, serializeRules } from '../../lib/rules.js';
import { readStandinLog, ROOT, runBin, standinPath, STANDIN_BIN, tempDir, type CliResult, type StandinCall } from './cli.js';

/**
 * The cluster test layer's access to the control plane that test/cluster/setup.ts started for the
 * run (one for all files; the files run one after another), and a bench that runs the real
 * bin/controller against it with the real kubectl, as the least-privileged user of
 * controller/rbac.yaml.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    /** How to reach the control plane, or null when the layer is skipped. */
    cluster: ControlPlaneInfo | null;
    /** Why the layer is skipped, or null when it runs. */
    clusterSkip: string | null;
  }
}

export const CONTROLLER_USER = 'k8s-ext-controller';
export const FORWARDER_NAMESPACE = 'external-services';
export const CONFIGMAP = 'external-service-data';
export const RBAC_FILE = path.join(ROOT, 'controller/rbac.yaml');

const skip = inject('clusterSkip');
export const clusterSkipReason: string | undefined = skip ?? undefined;
if (clusterSkipReason !== undefined) console.warn(`cluster tests skipped: ${clusterSkipReason}`);

let access: ClusterAccess | undefined;
/** The control plane of this run (only call it inside tests that are not skipped). */
export function cluster(): ClusterAccess {
  const info = inject('cluster');
  if (!info) throw new Error(`no control plane: ${clusterSkipReason ?? 'unknown reason'}`);
  access ??= new ClusterAccess(info);
  return access;
}

const encode = encodeURIComponent;

/** The real kubectl, as the administrator unless another kubeconfig is given. */
export async function kubectl(args: readonly string[], options: { input?: string; kubeconfig?: string; reject?: boolean } = {}): Promise<RunResult> {
  const access = cluster();
  return run(access.kubectl, [...args, '--kubeconfig', options.kubeconfig ?? access.info.adminKubeconfig], {
    input: options.input,
    reject: options.reject,
    env: { HOME: access.info.dir },
  });
}

/** Applies controller/rbac.yaml as the administrator (it also creates the controller's namespace). */
export async function applyRbac(): Promise<void> {
  await kubectl(['apply', '-f', RBAC_FILE]);
  await waitForServiceAccount(FORWARDER_NAMESPACE);
}

/** Pods are refused until the serviceaccount controller has made `default` in their namespace. */
export async function waitForServiceAccount(namespace: string): Promise<void> {
  await vi.waitFor(
    async () => {
      if ((await cluster().admin.find(`/api/v1/namespaces/${encode(namespace)}/serviceaccounts/default`)) === undefined) {
        throw new Error(`no ServiceAccount default in namespace ${namespace} yet`);
      }
    },
    { timeout: 30_000, interval: 100 },
  );
}

/** Deletes namespaces as the administrator and waits until they are gone (the namespace controller finished). */
export async function deleteNamespaces(...namespaces: string[]): Promise<void> {
  const admin = cluster().admin;
  await Promise.all(namespaces.map((namespace) => admin.delete(`/api/v1/namespaces/${encode(namespace)}`)));
  for (const namespace of namespaces) {
    await vi.waitFor(
      async () => {
        if ((await admin.find(`/api/v1/namespaces/${encode(namespace)}`)) !== undefined) throw new Error(`namespace ${namespace} is still there`);
      },
      { timeout: 60_000, interval: 250 },
    );
  }
}

export interface AppPod {
  name: string;
  ip: string;
  ready?: boolean;
}

/**
 * A source application as a user would have it: a namespace, a Service selecting `app: <service>`
 * and pods bound to the lab node that the node reports Running (Ready or not) with their IPs, as a
 * kubelet would. Resolves once the endpointslice controller has published every pod.
 */
export async function createApp(namespace: string, service: string, pods: readonly AppPod[], ports: readonly number[] = [80]): Promise<void> {
  const { admin, node } = cluster();
  if ((await admin.find(`/api/v1/namespaces/${encode(namespace)}`)) === undefined) {
    await admin.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  }
  await waitForServiceAccount(namespace);
  await admin.post(`/api/v1/namespaces/${encode(namespace)}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: service },
    spec: {
      selector: { app: service },
      ports: ports.map((port) => ({ name: ports.length > 1 ? `tcp-${port}` : undefined, protocol: 'TCP', port, targetPort: port })),
    },
  });
  for (const pod of pods) {
    await admin.post(`/api/v1/namespaces/${encode(namespace)}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod.name, labels: { app: service } },
      spec: { nodeName: node.name, containers: [{ name: 'app', image: 'registry.example/app:1', ports: ports.map((port) => ({ containerPort: port })) }] },
    });
    await node.setPodRunning(namespace, pod.name, pod.ip, { ready: pod.ready ?? true });
  }
  const expected = pods.map((pod) => `${pod.ip}:${String(pod.ready ?? true)}`).sort();
  await vi.waitFor(
    async () => {
      const published = (await sliceEndpoints(namespace, service)).sort();
      if (published.join(' ') !== expected.join(' ')) throw new Error(`EndpointSlices of ${namespace}/${service}: ${published.join(' ')}, expected ${expected.join(' ')}`);
    },
    { timeout: 30_000, interval: 250 },
  );
}

/** `address:ready` of every endpoint in the Service's EndpointSlices. */
export async function sliceEndpoints(namespace: string, service: string): Promise<string[]> {
  const slices = await endpointSlices(namespace, service);
  return slices.flatMap((slice) =>
    ((slice.endpoints as { addresses: string[]; conditions?: { ready?: boolean } }[] | null) ?? []).flatMap((endpoint) =>
      endpoint.addresses.map((address) => `${address}:${String(endpoint.conditions?.ready ?? true)}`),
    ),
  );
}

export async function endpointSlices(namespace: string, service: string): Promise<KubeObjectJson[]> {
  const selector = encode(`kubernetes.io/service-name=${service}`);
  return (await cluster().admin.get<KubeList>(`/apis/discovery.k8s.io/v1/namespaces/${encode(namespace)}/endpointslices?labelSelector=${selector}`)).items;
}

export async function getObject(pathname: string): Promise<KubeObjectJson | undefined> {
  return cluster().admin.find(pathname);
}

const MUTATING_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

/**
 * bin/controller (the real program) against the control plane, with the real kubectl of the
 * control plane's version first on PATH, authenticated as CONTROLLER_USER (bound only by
 * controller/rbac.yaml). The gateway side is not the subject here: the rules go to the scp and ssh
 * stand-ins of test/bin, which write them under a folder per gateway host.
 */
export class ClusterControllerBench {
  readonly root: string;
  readonly conf: string;
  readonly gateways: string;
  readonly log: string;
  readonly key: string;
  private kubeconfig = '';
  private readonly remove: () => void;

  constructor(readonly hosts = 'gw1') {
    const { dir, remove } = tempDir('k8s-ext-cluster-');
    this.root = dir;
    this.remove = remove;
    this.conf = path.join(dir, 'conf');
    this.gateways = path.join(dir, 'gateways');
    this.log = path.join(dir, 'calls.jsonl');
    this.key = path.join(dir, 'id_rsa');
    fs.mkdirSync(this.conf);
    fs.mkdirSync(this.gateways);
    fs.mkdirSync(path.join(dir, 'home'));
    fs.writeFileSync(this.key, 'not a real key\n', { mode: 0o600 });
  }

  /** Makes the controller user's kubeconfig (a client certificate of the cluster's CA). */
  async init(): Promise<this> {
    this.kubeconfig = await cluster().userKubeconfig(CONTROLLER_USER);
    return this;
  }

  get controllerKubeconfig(): string {
    return this.kubeconfig;
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      PATH: standinPath(cluster().info.kubernetesBinDir, path.join(STANDIN_BIN, 'controller'), STANDIN_BIN),
      HOME: path.join(this.root, 'home'),
      KUBECONFIG: this.kubeconfig,
      SCP_STANDIN_DIR: this.gateways,
      STANDIN_LOG: this.log,
      SSH_KEY_PATH: this.key,
      GATEWAY_NODE_IP: this.hosts,
      ...extra,
    };
  }

  writeConf(name: string, text: string): void {
    fs.writeFileSync(path.join(this.conf, name), text);
  }

  removeConf(name: string): void {
    fs.rmSync(path.join(this.conf, name));
  }

  run(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return runBin('controller', args, { env: this.env(env), timeoutMs: 90_000 });
  }

  /** One cycle (`--once`), with the API requests it made (from the audit log) and the scp/ssh calls. */
  async cycle(env: NodeJS.ProcessEnv = {}): Promise<CliResult & { requests: AuditEvent[]; deliveries: StandinCall[] }> {
    const requestsBefore = this.requests().length;
    const callsBefore = readStandinLog(this.log).length;
    const result = await this.run(['--once', this.conf], env);
    return { ...result, requests: this.requests().slice(requestsBefore), deliveries: readStandinLog(this.log).slice(callsBefore) };
  }

  /** The controller user's API requests on objects (discovery left out), in order. */
  requests(): AuditEvent[] {
    return cluster()
      .auditEvents()
      .filter((event) => event.user.username === CONTROLLER_USER && event.objectRef !== undefined);
  }

  static writes(requests: readonly AuditEvent[]): AuditEvent[] {
    return requests.filter((event) => MUTATING_VERBS.has(event.verb));
  }

  /** The state ConfigMap, or a forwarder's own (CONFIGMAP-<name>), as the API server stores it. */
  async configMap(forwarder?: string): Promise<KubeObjectJson & { data?: Record<string, string> }> {
    const name = forwarder === undefined ? CONFIGMAP : `${CONFIGMAP}-${forwarder}`;
    const found = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/configmaps/${name}`);
    if (!found) throw new Error(`ConfigMap ${name} is missing`);
    return found as KubeObjectJson & { data?: Record<string, string> };
  }

  /** A forwarder's rules, as its ConfigMap holds them (undefined without the ConfigMap). */
  async rules(forwarder: string): Promise<string | undefined> {
    const found = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/configmaps/${CONFIGMAP}-${forwarder}`);
    return (found as { data?: Record<string, string> } | undefined)?.data?.['data.yaml'];
  }

  /** What `genrule` prints for the conf directory now: the whole rules document. */
  async genrule(): Promise<string> {
    const result = await this.run(['genrule', this.conf]);
    if (result.exitCode !== 0) throw new Error(`genrule failed: ${result.stderr}`);
    return `${result.stdout}\n`; // runBin strips the final newline
  }

  /** Each reader holds its part of the whole document: the gateway host its part, each forwarder its entry. */
  async expectEachReaderHolds(whole: string, forwarders: readonly string[]): Promise<void> {
    const rules = parseRules(whole, 'genrule');
    expect(this.gatewayRules()).toBe(serializeRules(gatewayDocument(rules)));
    for (const name of forwarders) expect(await this.rules(name)).toBe(serializeRules(forwarderDocument(rules, name)));
  }

  /** The rules file on a gateway host (written by the scp and ssh stand-ins), or undefined. */
  gatewayRules(host = 'gw1'): string | undefined {
    const file = path.join(this.gateways, host, 'tmp/rules.yaml');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
  }

  dispose(): void {
    this.remove();
  }
}

/** The README's ExternalService, with names, addresses and ports that tests may change. */
export function externalService(
  name: string,
  sources: readonly { namespace: string; service: string; sourceIP: string }[],
  ports: readonly (number | { port: number; targetPort?: number; name?: string })[] = [8000],
  targetIP = '192.168.122.139',
): string {
  const portLines = ports.map((entry) => {
    const port = typeof entry === 'number' ? { port: entry } : entry;
    const name = port.name === undefined ? '' : `, name: ${JSON.stringify(port.name)}`;
    return `    - {protocol: TCP, port: ${port.port}, targetPort: ${port.targetPort ?? port.port}${name}}`;
  });
  const sourceLines = sources.map(
    (source) => `    - service: {namespace: ${JSON.stringify(source.namespace)}, name: ${JSON.stringify(source.service)}}\n      sourceIP: ${source.sourceIP}`,
  );
  return [
    'apiVersion: externalservice.example.com/v1alpha1',
    'kind: ExternalService',
    'metadata:',
    `  name: ${JSON.stringify(name)}`,
    'spec:',
    `  targetIP: ${targetIP}`,
    `  sources:${sourceLines.length === 0 ? ' []' : ''}`,
    ...sourceLines,
    `  ports:${portLines.length === 0 ? ' []' : ''}`,
    ...portLines,
    '',
  ].join('\n');
}
