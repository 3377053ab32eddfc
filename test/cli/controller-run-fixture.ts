import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { endpointSlice, readStandinLog, runBin, seedKube, standinPath, STANDIN_BIN, tempDir, type CliResult, type StandinCall } from '../helpers/cli.js';

/**
 * A controller test bench: kubectl, scp and ssh stand-ins on PATH (a file-backed API server and
 * a gateway filesystem per host), a conf directory, and helpers to read what they recorded.
 */

export const README_SAMPLE = `apiVersion: externalservice.example.com/v1alpha1
kind: ExternalService
metadata:
  name: my-external-service1
spec:
  targetIP: 192.168.122.139
  sources:
    - service:
        namespace: ns1
        name: my-service1
      sourceIP: 192.168.122.200
    - service:
        namespace: ns2
        name: my-service2
      sourceIP: 192.168.122.201
  ports:
    - protocol: TCP
      port: 8000
      targetPort: 8000
`;

export function externalService(name: string, options: { targetIP?: string; ports?: number[]; sourceIP?: string } = {}): string {
  const ports = options.ports ?? [8000];
  return `apiVersion: externalservice.example.com/v1alpha1
kind: ExternalService
metadata:
  name: ${name}
spec:
  targetIP: ${options.targetIP ?? '192.168.122.139'}
  sources:
    - service: {namespace: ns1, name: my-service1}
      sourceIP: ${options.sourceIP ?? '192.168.122.200'}
  ports:
${ports.length === 0 ? '    []' : ports.map((port) => `    - {protocol: TCP, port: ${port}, targetPort: ${port}}`).join('\n')}
`;
}

const MUTATING_VERBS = new Set(['create', 'replace', 'apply', 'delete', 'patch', 'label', 'annotate']);

export function isMutating(call: StandinCall): boolean {
  if (call.program === 'kubectl') return MUTATING_VERBS.has(call.argv.find((arg) => !arg.startsWith('-')) ?? '');
  return true;
}

export const CONTROLLER_STANDINS = path.join(STANDIN_BIN, 'controller');

export class ControllerBench {
  readonly root: string;
  readonly kube: string;
  readonly gateways: string;
  readonly conf: string;
  readonly log: string;
  readonly key: string;
  private readonly cleanup: () => void;

  constructor(readonly hosts = 'gw1') {
    const { dir, remove } = tempDir('k8s-ext-controller-');
    this.root = dir;
    this.cleanup = remove;
    this.kube = path.join(dir, 'kube');
    this.gateways = path.join(dir, 'gateways');
    this.conf = path.join(dir, 'conf');
    this.log = path.join(dir, 'calls.jsonl');
    this.key = path.join(dir, 'id_rsa');
    for (const folder of [this.kube, this.gateways, this.conf]) fs.mkdirSync(folder);
    fs.writeFileSync(this.key, 'not a real key\n', { mode: 0o600 });
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      PATH: standinPath(CONTROLLER_STANDINS, STANDIN_BIN),
      KUBE_STANDIN_DIR: this.kube,
      SCP_STANDIN_DIR: this.gateways,
      STANDIN_LOG: this.log,
      SSH_KEY_PATH: this.key,
      GATEWAY_NODE_IP: this.hosts,
      ...extra,
    };
  }

  /** The README's two source services, their EndpointSlices and namespaces. */
  seedReadmeCluster(): void {
    const svc = (namespace: string, name: string, clusterIP: string): Record<string, unknown> => ({
      kind: 'Service',
      metadata: { namespace, name },
      spec: { type: 'ClusterIP', clusterIP, ports: [{ protocol: 'TCP', port: 80, targetPort: 80 }], selector: { app: name } },
    });
    seedKube(this.kube, [
      { kind: 'Namespace', metadata: { name: 'ns1' } },
      { kind: 'Namespace', metadata: { name: 'ns2' } },
      svc('ns1', 'my-service1', '10.96.0.11'),
      svc('ns2', 'my-service2', '10.96.0.12'),
      endpointSlice('ns1', 'my-service1', ['10.244.0.11']),
      endpointSlice('ns2', 'my-service2', ['10.244.0.12']),
    ]);
  }

  writeConf(name: string, text: string): void {
    fs.writeFileSync(path.join(this.conf, name), text);
  }

  removeConf(name: string): void {
    fs.rmSync(path.join(this.conf, name));
  }

  run(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return runBin('controller', args, { env: this.env(env) });
  }

  once(env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return this.run(['--once', this.conf], env);
  }

  /** Runs one cycle and returns it with the calls it made. */
  async cycle(env: NodeJS.ProcessEnv = {}): Promise<CliResult & { calls: StandinCall[] }> {
    const before = this.calls().length;
    const result = await this.once(env);
    return { ...result, calls: this.calls().slice(before) };
  }

  calls(): StandinCall[] {
    return readStandinLog(this.log);
  }

  object(resource: string, namespace: string, name: string): Record<string, unknown> | undefined {
    const file = path.join(this.kube, resource, namespace, `${name}.json`);
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : undefined;
  }

  /** The state ConfigMap (CONFIGMAP_NAME), or a forwarder's own (CONFIGMAP_NAME-<name>). */
  configMap(forwarder?: string): { data: Record<string, string>; metadata: { annotations?: Record<string, string> } } | undefined {
    return this.object('configmaps', 'external-services', forwarder === undefined ? 'external-service-data' : `external-service-data-${forwarder}`) as
      | { data: Record<string, string>; metadata: { annotations?: Record<string, string> } }
      | undefined;
  }

  /** The rules document in a forwarder's ConfigMap, or undefined. */
  forwarderRules(name: string): string | undefined {
    return this.configMap(name)?.data['data.yaml'];
  }

  /** The rules file on a gateway host, or undefined. */
  gatewayRules(host = 'gw1'): string | undefined {
    const file = path.join(this.gateways, host, 'tmp/rules.yaml');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
  }

  /** Every file under a gateway host's /tmp (no temporary file may stay behind). */
  gatewayFiles(host = 'gw1'): string[] {
    const folder = path.join(this.gateways, host, 'tmp');
    return fs.existsSync(folder) ? fs.readdirSync(folder).sort() : [];
  }

  failKubectl(pattern: string | undefined): void {
    const file = path.join(this.kube, '.fail');
    if (pattern === undefined) fs.rmSync(file, { force: true });
    else fs.writeFileSync(file, `${pattern}\n`);
  }

  failGateway(host: string | undefined, failing: boolean): void {
    const file = path.join(this.gateways, host === undefined ? '.fail' : `.fail-${host}`);
    if (failing) fs.writeFileSync(file, '');
    else fs.rmSync(file, { force: true });
  }

  /** Runs teardown and checks that nothing of the controller is left in the API server. */
  async teardownAndExpectClean(): Promise<void> {
    const result = await this.run(['teardown', this.conf]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(fs.existsSync(path.join(this.kube, 'namespaces/_/external-services.json'))).toBe(false);
    for (const resource of ['pods', 'services', 'configmaps', 'secrets', 'serviceaccounts', 'roles', 'rolebindings']) {
      const folder = path.join(this.kube, resource, 'external-services');
      expect(fs.existsSync(folder) ? fs.readdirSync(folder) : []).toEqual([]);
    }
  }

  remove(): void {
    this.cleanup();
  }
}
