import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../lib/exec.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const STANDIN_BIN = path.join(ROOT, 'test/bin');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs one of the real bin/ programs (built into dist/) in a clean environment and returns its exit code and output. */
export async function runBin(
  name: 'controller' | 'gateway' | 'forwarder',
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const result = await run(path.join(ROOT, 'bin', name), args, {
    env: { NO_COLOR: '1', ...options.env },
    extendEnv: false,
    cwd: options.cwd ?? os.tmpdir(),
    input: options.input,
    reject: false,
    timeoutMs: options.timeoutMs ?? 20_000,
  });
  // Without the final newline, as a shell's $(...) would give it.
  return { exitCode: result.exitCode, stdout: result.stdout.replace(/\n$/, ''), stderr: result.stderr.replace(/\n$/, '') };
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = 'k8s-ext-test-'): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** PATH with the given stand-in directories first, then the system's (for node itself). */
export function standinPath(...dirs: string[]): string {
  return [...dirs, path.dirname(process.execPath), '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
}

export interface StandinCall {
  program: string;
  argv: string[];
  stdin?: string;
}

/** The calls recorded by the stand-ins in a STANDIN_LOG file. */
export function readStandinLog(file: string): StandinCall[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as StandinCall);
}

/** An EndpointSlice of a service, as the endpointslice controller writes it (all endpoints ready unless listed in notReady). */
export function endpointSlice(namespace: string, service: string, ready: readonly string[], notReady: readonly string[] = []): Record<string, unknown> {
  const endpoint = (ip: string, isReady: boolean): Record<string, unknown> => ({ addresses: [ip], conditions: { ready: isReady } });
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace, name: `${service}-abcde`, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: [...ready.map((ip) => endpoint(ip, true)), ...notReady.map((ip) => endpoint(ip, false))],
    ports: [{ protocol: 'TCP', port: 80 }],
  };
}

/** Seeds the kubectl stand-in's store with objects (each needs kind and metadata.name). */
export function seedKube(dir: string, objects: readonly Record<string, unknown>[]): void {
  const resources: Record<string, [resource: string, apiVersion: string]> = {
    Pod: ['pods', 'v1'],
    Service: ['services', 'v1'],
    EndpointSlice: ['endpointslices', 'discovery.k8s.io/v1'],
    ConfigMap: ['configmaps', 'v1'],
    Secret: ['secrets', 'v1'],
    Namespace: ['namespaces', 'v1'],
    ServiceAccount: ['serviceaccounts', 'v1'],
    Role: ['roles', 'rbac.authorization.k8s.io/v1'],
    RoleBinding: ['rolebindings', 'rbac.authorization.k8s.io/v1'],
  };
  for (const object of objects) {
    const kind = String(object.kind);
    const known = resources[kind];
    if (!known) throw new Error(`seedKube: unknown kind ${kind}`);
    const [resource, apiVersion] = known;
    const metadata = object.metadata as { name: string; namespace?: string };
    const ns = resource === 'namespaces' ? '_' : (metadata.namespace ?? 'default');
    const file = path.join(dir, resource, ns, `${metadata.name}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify({ apiVersion, ...object }, null, 2)}\n`);
  }
}
