import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { endpointSlice, readStandinLog, ROOT, runBin, seedKube, standinPath, STANDIN_BIN, tempDir, type CliResult } from '../helpers/cli.js';

const FIXTURE = path.join(ROOT, 'test/fixtures/genrule/readme-sample');
const EXPECTED = fs.readFileSync(path.join(FIXTURE, 'expected.yaml'), 'utf8');
const SAMPLE = fs.readFileSync(path.join(FIXTURE, 'conf/my-external-service1.yaml'), 'utf8');

function externalService(name: string, sourceIP: string, service: string): string {
  return `kind: ExternalService
metadata: {name: ${name}}
spec:
  targetIP: 192.168.122.139
  sources:
    - {service: {namespace: ns1, name: ${service}}, sourceIP: ${sourceIP}}
  ports:
    - {port: 8000, targetPort: 8000}
`;
}

/** runBin strips the program's final newline; the programs print exactly one. */
function withFinalNewline(result: CliResult): string {
  return `${result.stdout}\n`;
}

function readmeCluster(): Record<string, unknown>[] {
  const objects: Record<string, unknown>[] = [
    { kind: 'Pod', metadata: { namespace: 'external-services', name: 'my-external-service1' }, status: { podIP: '10.244.0.50' } },
  ];
  for (const [namespace, name, clusterIP, endpoint] of [
    ['ns1', 'my-service1', '10.96.0.11', '10.244.0.11'],
    ['ns2', 'my-service2', '10.96.0.12', '10.244.0.12'],
  ] as const) {
    objects.push(
      { kind: 'Service', metadata: { namespace, name }, spec: { type: 'ClusterIP', clusterIP, ports: [{ protocol: 'TCP', port: 80, targetPort: 80 }] } },
      endpointSlice(namespace, name, [endpoint], ['10.244.0.99']),
    );
  }
  return objects;
}

describe('bin/controller genrule, validate and snapshot against the kubectl stand-in', () => {
  let work: { dir: string; remove: () => void };
  let conf: string;
  let kube: string;
  let log: string;

  beforeEach(() => {
    work = tempDir('k8s-ext-genrule-');
    conf = path.join(work.dir, 'conf');
    kube = path.join(work.dir, 'kube');
    log = path.join(work.dir, 'calls.jsonl');
    fs.mkdirSync(conf);
    fs.mkdirSync(kube);
  });
  afterEach(() => work.remove());

  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: standinPath(STANDIN_BIN),
    KUBE_STANDIN_DIR: kube,
    STANDIN_LOG: log,
    ...extra,
  });
  const controller = (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> => runBin('controller', args, { env: env(extra) });
  const kubectlCalls = (): string[][] => readStandinLog(log).filter((call) => call.program === 'kubectl').map((call) => call.argv);

  it('prints the README sample rules byte for byte with three read-only kubectl calls, without SSH_KEY_PATH or GATEWAY_NODE_IP', async () => {
    fs.writeFileSync(path.join(conf, 'my-external-service1.yaml'), SAMPLE);
    seedKube(kube, readmeCluster());
    const result = await controller(['genrule', conf]);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(withFinalNewline(result)).toBe(EXPECTED);
    // The three reads run in parallel: their order is not fixed.
    expect(kubectlCalls()).toHaveLength(3);
    expect(kubectlCalls()).toEqual(
      expect.arrayContaining([
        ['get', '--raw', '/api/v1/namespaces/external-services/pods'],
        ['get', '--raw', '/api/v1/services'],
        ['get', '--raw', '/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io%2Fservice-name'],
      ]),
    );
  });

  it('makes as many kubectl calls for 40 ExternalServices as for one', async () => {
    const count = async (n: number): Promise<number> => {
      fs.rmSync(log, { force: true });
      for (let i = 0; i < n; i++) fs.writeFileSync(path.join(conf, `es${i}.yaml`), externalService(`es${i}`, `10.1.0.${(i % 8) + 1}`, `svc${i % 5}`));
      const objects: Record<string, unknown>[] = [];
      for (let i = 0; i < 5; i++) {
        objects.push({ kind: 'Service', metadata: { namespace: 'ns1', name: `svc${i}` }, spec: { clusterIP: `10.96.1.${i + 1}`, ports: [{ port: 80 }] } });
      }
      for (let i = 0; i < n; i++) objects.push({ kind: 'Pod', metadata: { namespace: 'external-services', name: `es${i}` }, status: { podIP: `10.244.2.${i + 1}` } });
      seedKube(kube, objects);
      const result = await controller(['genrule', conf]);
      expect(result.exitCode).toBe(0);
      expect(result.stdout.match(/^ {2}"es\d+":$/gm)).toHaveLength(n);
      return kubectlCalls().length;
    };
    const forOne = await count(1);
    expect(await count(40)).toBe(forOne);
    expect(forOne).toBe(3);
  });

  it('reports an invalid file on stderr, skips it and still prints the others, exit 0', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    fs.writeFileSync(path.join(conf, 'b.yaml'), externalService('broken', '300.1.1.1', 'my-service1'));
    seedKube(kube, readmeCluster());
    const result = await controller(['genrule', conf]);
    expect(result.exitCode).toBe(0);
    expect(withFinalNewline(result)).toBe(EXPECTED);
    expect(result.stderr).toContain(`skipped invalid file: ${path.join(conf, 'b.yaml')}: spec.sources[0].sourceIP: "300.1.1.1" is not an IPv4 address`);
  });

  it('warns on stderr about a missing service and a forwarder pod without IP, and leaves their rules out', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    seedKube(kube, readmeCluster().filter((object) => (object.metadata as { name: string }).name !== 'my-service2' && object.kind !== 'Pod'));
    const result = await controller(['genrule', conf]);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/WARN .*my-external-service1: service ns2\/my-service2 not found/);
    expect(result.stderr).toMatch(/WARN .*forwarder pod external-services\/my-external-service1 does not exist yet/);
    expect(result.stdout).toContain('"iptables-rule": ""');
    expect(result.stdout).not.toContain('my-service2');
    expect(result.stdout).not.toMatch(/10\.96\.0\.12|<none>|None/);
  });

  it('reads the forwarder pods from FORWARDER_NAMESPACE or --namespace', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    await controller(['genrule', conf], { FORWARDER_NAMESPACE: 'fwd-env' });
    await controller(['genrule', '--namespace', 'fwd-flag', conf], { FORWARDER_NAMESPACE: 'fwd-env' });
    expect(kubectlCalls().filter((argv) => argv[2]?.endsWith('/pods'))).toEqual([
      ['get', '--raw', '/api/v1/namespaces/fwd-env/pods'],
      ['get', '--raw', '/api/v1/namespaces/fwd-flag/pods'],
    ]);
  });

  it('prints nothing on stdout and exits 1 when a cluster read fails', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    seedKube(kube, readmeCluster());
    fs.writeFileSync(path.join(kube, '.fail'), '^get --raw \\S*/endpointslices\n');
    const result = await controller(['genrule', conf]);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain("kubectl get --raw '/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io%2Fservice-name'");
  });

  it('saves a snapshot that genrule --snapshot turns into the same rules with no kubectl at all', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    seedKube(kube, readmeCluster());
    const file = path.join(work.dir, 'snapshot.json');
    const saved = await controller(['snapshot', '-o', file]);
    expect(saved.exitCode).toBe(0);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ version: 1, endpoints: [{ name: 'my-service1', readyIPs: ['10.244.0.11'] }, { name: 'my-service2' }] });

    const printed = await controller(['snapshot']);
    expect(withFinalNewline(printed)).toBe(fs.readFileSync(file, 'utf8'));

    fs.rmSync(log);
    const offline = await runBin('controller', ['genrule', '--snapshot', file, conf], { env: { PATH: path.dirname(process.execPath) } });
    expect(offline.stderr).toBe('');
    expect(withFinalNewline(offline)).toBe(EXPECTED);
    expect(readStandinLog(log)).toEqual([]);
  });

  it('rejects a malformed snapshot file with exit 2, naming the file and field', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    const file = path.join(work.dir, 'snapshot.json');
    fs.writeFileSync(file, '{"version":1,"pods":{},"services":[],"endpoints":[]}');
    const result = await controller(['genrule', '--snapshot', file, conf]);
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`${file}: pods: must be a list`);
  });

  it('validate reports every problem of every file and exits 2, without calling kubectl', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    fs.writeFileSync(path.join(conf, 'b.yaml'), externalService('Bad_Name', '1.2.3', 'my-service1'));
    fs.writeFileSync(path.join(conf, 'c.yml'), '');
    fs.writeFileSync(path.join(conf, '.hidden.yaml'), 'not: [valid');
    const result = await controller(['validate', conf]);
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    const b = path.join(conf, 'b.yaml');
    expect(result.stderr).toContain(`${b}: metadata.name: "Bad_Name" is not a DNS-1035 label`);
    expect(result.stderr).toContain(`${b}: spec.sources[0].sourceIP: "1.2.3" is not an IPv4 address`);
    expect(result.stderr).toContain(`${path.join(conf, 'c.yml')}: file is empty`);
    // A dotfile is not read, only named as skipped.
    expect(result.stderr).toContain(`"${'.hidden.yaml'}": skipped: its name starts with '.'`);
    expect(result.stderr).not.toMatch(/hidden\.yaml.*invalid YAML/);
    expect(result.stderr).toMatch(/conf files have problems valid=1 invalid=2 problems=3/);
    expect(kubectlCalls()).toEqual([]);
  });

  it('validate exits 0 for valid files', async () => {
    fs.writeFileSync(path.join(conf, 'a.yaml'), SAMPLE);
    const result = await controller(['validate', conf]);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/conf files are valid valid=1 invalid=0 problems=0/);
  });

  it('exits 2 naming the directory when CONF_DIR does not exist', async () => {
    const missing = path.join(work.dir, 'nope');
    const result = await controller(['genrule', missing]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${missing}: cannot read the conf directory`);
  });
});
