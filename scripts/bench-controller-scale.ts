import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ClusterAccess, ControlPlane, type AuditEvent } from '../lab/control-plane.js';
import type { KubeApi, KubeList, KubeObjectJson } from '../lab/kube-api.js';
import { binaryProblems, kubeBinaries } from '../lab/kube-binaries.js';
import { run } from '../lib/exec.js';
import { clusterFor, confText } from './bench-genrule.js';

/**
 * The controller at scale against a real control plane (lab/control-plane.ts): N ExternalServices
 * x 4 sources x 2 ports (the genrule section's shape), bin/controller --once as the
 * least-privileged user of controller/rbac.yaml, the gateway side on the scp and ssh stand-ins.
 * Measures the first cycle (creates everything), the cycle that publishes the rules once every
 * forwarder pod has an IP, and a steady cycle: time, kubectl processes, API requests and writes
 * (from the API server's audit log), the controller's peak memory (VmHWM), and the largest object
 * the API server then holds in the forwarder namespace, beside the one ConfigMap the original's
 * layout would need.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FORWARDER_NAMESPACE = 'external-services';
const CONTROLLER_USER = 'k8s-ext-controller';
const MUTATING = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
/** The API server refuses objects over 1 MiB; the target for any object is half that. */
const OBJECT_TARGET_BYTES = 512 * 1024;
const CONFIGMAP_LIMIT_BYTES = 1024 * 1024;

export interface CycleMeasurement {
  ms: number;
  kubectlCalls: number;
  apiRequests: number;
  apiWrites: number;
  peakRssMiB: number;
  /** The longest kubectl call of the cycle: `get pods` etc., and its time. */
  slowestKubectl: { call: string; ms: number };
}

export interface ControllerScaleMeasurement {
  externalServices: number;
  kubernetesVersion: string;
  first: CycleMeasurement;
  /** The cycle after every forwarder pod got its IP: the full rules are published. */
  publish: CycleMeasurement;
  steady: CycleMeasurement;
  largestObject: { kind: string; name: string; bytes: number };
  objectsOverTarget: number;
  objectsInNamespace: number;
  /** The whole rules document (genrule): what the original's one ConfigMap would have to hold. */
  wholeRulesBytes: number;
}

async function inBatches<T>(items: readonly T[], size: number, work: (item: T) => Promise<unknown>): Promise<void> {
  for (let index = 0; index < items.length; index += size) await Promise.all(items.slice(index, index + size).map(work));
}

const shellQuote = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`;

/**
 * A kubectl that runs the real one and records each call (its time in ns, then its argv, one line
 * written at once). A shell script: a Node wrapper cost each call about as much CPU as the call.
 */
function kubectlRecorder(dir: string, realKubectl: string, log: string): void {
  const script = `#!/bin/sh
started=$(date +%s%N)
${shellQuote(realKubectl)} "$@"
status=$?
line="$(($(date +%s%N) - started))"
separator=$(printf '\\037')
for arg in "$@"; do line="$line$separator$arg"; done
printf '%s\\n' "$line" >> ${shellQuote(log)}
exit $status
`;
  fs.writeFileSync(path.join(dir, 'kubectl'), script, { mode: 0o755 });
}

function recordedCalls(file: string): { argv: string[]; ms: number }[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [ns, ...argv] = line.split('\x1f');
      return { argv, ms: Math.round(Number(ns) / 1e6) };
    });
}

/** `create`, `get pods`, or for a list read as the API's JSON `get --raw .../configmaps`. */
function callLabel(argv: readonly string[]): string {
  const raw = argv.indexOf('--raw');
  if (raw !== -1) return `get --raw .../${(argv[raw + 1] ?? '').split('?')[0]?.split('/').at(-1) ?? ''}`;
  return argv.filter((arg) => !arg.startsWith('-')).slice(0, 2).join(' ');
}

/** Runs `bin/controller --once`, sampling its peak resident memory (VmHWM) until it exits. */
async function runOnce(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; peakRssMiB: number; stderr: string; code: number | null }> {
  const started = performance.now();
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'controller'), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let peakKiB = 0;
  const sample = (): void => {
    try {
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      peakKiB = Math.max(peakKiB, Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0));
    } catch {
      // exited between samples
    }
  };
  const timer = setInterval(sample, 10);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
  clearInterval(timer);
  return { ms: performance.now() - started, peakRssMiB: peakKiB / 1024, stderr, code };
}

export async function benchControllerScale(count: number, progress: (text: string) => void): Promise<ControllerScaleMeasurement | string> {
  const binaries = kubeBinaries();
  const problems = await binaryProblems(binaries);
  if (problems.length > 0) return `the Kubernetes binaries are not built (${problems[0]}): run npm run cluster:build`;

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-controller-scale-'));
  const plane = await ControlPlane.start({ binaries });
  try {
    const access = new ClusterAccess(plane.info);
    const api = access.admin;
    const confDir = path.join(work, 'conf');
    const binDir = path.join(work, 'bin');
    const gatewayDir = path.join(work, 'gateway');
    const kubectlLog = path.join(work, 'kubectl.jsonl');
    for (const dir of [confDir, binDir, gatewayDir]) fs.mkdirSync(dir);
    kubectlRecorder(binDir, access.kubectl, kubectlLog);
    fs.symlinkSync(path.join(ROOT, 'test', 'bin', 'scp'), path.join(binDir, 'scp'));
    fs.symlinkSync(path.join(ROOT, 'test', 'bin', 'controller', 'ssh'), path.join(binDir, 'ssh'));
    const key = path.join(work, 'id_rsa');
    fs.writeFileSync(key, 'not a real key\n', { mode: 0o600 });

    progress(`controller at scale: creating the sources of ${count} ExternalServices (${count * 4} Services and EndpointSlices) through the API`);
    // Room for every forwarder pod on the lab node (a kubelet's default is 110).
    const pods = String(count + 110);
    await api.patch(`/api/v1/nodes/${plane.info.node.name}/status`, { status: { capacity: { pods }, allocatable: { pods } } }, 'merge');
    const sources = clusterFor(count);
    for (const namespace of [...new Set(sources.services.map((service) => (service.metadata as { namespace: string }).namespace))]) {
      await api.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    }
    await inBatches(sources.services, 16, async (service) => {
      const { metadata, spec } = service as { metadata: { namespace: string; name: string }; spec: { ports: { protocol: string; port: number }[] } };
      // No selector: the EndpointSlices below are the service's, as for a service outside the cluster.
      const ports = spec.ports.map((port) => ({ ...port, name: `p${port.port}` }));
      await api.post(`/api/v1/namespaces/${metadata.namespace}/services`, { apiVersion: 'v1', kind: 'Service', metadata, spec: { ports } });
    });
    await inBatches(sources.endpointSlices, 16, async (slice) => {
      const namespace = (slice.metadata as { namespace: string }).namespace;
      const ports = (slice.ports as { port: number }[]).map((port) => ({ ...port, name: `p${port.port}` }));
      await api.post(`/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, { ...slice, ports });
    });
    for (let index = 0; index < count; index++) fs.writeFileSync(path.join(confDir, `es-${String(index).padStart(4, '0')}.yaml`), confText(index));
    await run(access.kubectl, ['apply', '-f', path.join(ROOT, 'controller', 'rbac.yaml'), '--kubeconfig', plane.info.adminKubeconfig]);
    const kubeconfig = await access.userKubeconfig(CONTROLLER_USER);

    const env: NodeJS.ProcessEnv = {
      PATH: [binDir, path.dirname(process.execPath), process.env.PATH ?? ''].join(path.delimiter),
      HOME: work,
      KUBECONFIG: kubeconfig,
      SSH_KEY_PATH: key,
      GATEWAY_NODE_IP: '192.0.2.10',
      SCP_STANDIN_DIR: gatewayDir,
      NO_COLOR: '1',
    };
    const controllerRequests = (events: readonly AuditEvent[]): AuditEvent[] =>
      events.filter((event) => event.user.username === CONTROLLER_USER && event.objectRef !== undefined);
    const cycle = async (what: string, expectedCodes: readonly number[] = [0]): Promise<CycleMeasurement> => {
      progress(`controller at scale: ${what}`);
      const callsBefore = recordedCalls(kubectlLog).length;
      const requestsBefore = controllerRequests(access.auditEvents()).length;
      const result = await runOnce(['--once', confDir], env);
      if (!expectedCodes.includes(result.code ?? -1)) throw new Error(`controller --once (${what}) exited ${result.code}: ${result.stderr.split('\n').slice(-5).join('\n')}`);
      const requests = controllerRequests(access.auditEvents()).slice(requestsBefore);
      const calls = recordedCalls(kubectlLog).slice(callsBefore);
      const slowest = calls.reduce((a, b) => (b.ms > a.ms ? b : a), { argv: ['-'], ms: 0 });
      return {
        ms: Math.round(result.ms),
        kubectlCalls: calls.length,
        slowestKubectl: { call: callLabel(slowest.argv), ms: slowest.ms },
        apiRequests: requests.length,
        apiWrites: requests.filter((event) => MUTATING.has(event.verb)).length,
        peakRssMiB: Math.round(result.peakRssMiB),
      };
    };

    const first = await cycle(`first cycle for ${count} ExternalServices`);
    progress(`controller at scale: reporting ${count} forwarder pods running`);
    await inBatches(
      Array.from({ length: count }, (_, index) => index),
      16,
      (index) => access.node.setPodRunning(FORWARDER_NAMESPACE, `es-${index}`, `10.244.${200 + (index >> 8)}.${index & 255}`, { timeoutMs: 120_000 }),
    );
    const publish = await cycle('the cycle that publishes the rules with every pod IP');
    let steady = await cycle('a steady cycle');
    for (let extra = 0; steady.apiWrites > 0 && extra < 3; extra++) steady = await cycle('a steady cycle (again: the previous one still wrote)');

    const objects: KubeObjectJson[] = [];
    for (const collection of ['/api/v1/namespaces/external-services/configmaps', '/api/v1/namespaces/external-services/pods', '/api/v1/namespaces/external-services/services', '/api/v1/namespaces/external-services/serviceaccounts', '/apis/rbac.authorization.k8s.io/v1/namespaces/external-services/roles', '/apis/rbac.authorization.k8s.io/v1/namespaces/external-services/rolebindings']) {
      const list = await (api as KubeApi).get<KubeList>(collection);
      const kind = collection.split('/').at(-1) ?? '';
      for (const item of list.items) objects.push({ ...item, kind });
    }
    const sizes = objects.map((object) => ({ kind: String(object.kind), name: object.metadata.name ?? '', bytes: Buffer.byteLength(JSON.stringify(object)) }));
    const largestObject = sizes.reduce((a, b) => (b.bytes > a.bytes ? b : a), { kind: '-', name: '-', bytes: 0 });
    const genrule = await run(process.execPath, [path.join(ROOT, 'bin', 'controller'), 'genrule', confDir], { env, timeoutMs: 300_000 });
    return {
      externalServices: count,
      kubernetesVersion: binaries.kubernetesVersion,
      first,
      publish,
      steady,
      largestObject,
      objectsOverTarget: sizes.filter((size) => size.bytes > OBJECT_TARGET_BYTES).length,
      objectsInNamespace: sizes.length,
      wholeRulesBytes: Buffer.byteLength(genrule.stdout),
    };
  } finally {
    await plane.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function renderControllerScale(result: ControllerScaleMeasurement | string, table: (header: string[], rows: string[][]) => string): string {
  if (typeof result === 'string') return `Controller at scale against a real control plane: skipped: ${result}`;
  const row = (name: string, cycle: CycleMeasurement): string[] => [
    name,
    (cycle.ms / 1000).toFixed(1),
    String(cycle.kubectlCalls),
    `${cycle.slowestKubectl.call} ${(cycle.slowestKubectl.ms / 1000).toFixed(1)} s`,
    String(cycle.apiRequests),
    String(cycle.apiWrites),
    String(cycle.peakRssMiB),
  ];
  const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(2);
  return [
    `Controller at scale against Kubernetes ${result.kubernetesVersion} (real kube-apiserver, bin/controller --once as ${CONTROLLER_USER}): ${result.externalServices} ExternalServices x 4 sources x 2 ports`,
    table(
      ['cycle', 's', 'kubectl calls', 'longest kubectl call', 'API requests', 'API writes', 'peak RSS MiB'],
      [row('first (creates everything)', result.first), row('publish (every pod has its IP)', result.publish), row('steady (nothing to do)', result.steady)],
    ),
    `largest object in ${FORWARDER_NAMESPACE}: ${result.largestObject.kind}/${result.largestObject.name}, ${(result.largestObject.bytes / 1024).toFixed(1)} KiB; ` +
      `${result.objectsOverTarget} of ${result.objectsInNamespace} objects over 512 KiB`,
    `the original's layout: one ConfigMap with the whole rules document, ${mib(result.wholeRulesBytes)} MiB (the API server refuses more than ${mib(CONFIGMAP_LIMIT_BYTES)} MiB)`,
  ].join('\n');
}
