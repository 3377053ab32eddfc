import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStandinLog, ROOT } from '../helpers/cli.js';
import {
  applyRbac,
  ClusterControllerBench,
  cluster,
  clusterSkipReason,
  CONFIGMAP,
  CONTROLLER_USER,
  createApp,
  deleteNamespaces,
  externalService,
  FORWARDER_NAMESPACE,
  getObject,
} from '../helpers/cluster.js';

/**
 * The real bin/controller against the real control plane, with the real kubectl, as the user that
 * controller/rbac.yaml binds (never as an administrator). The scenario runs in order, like a
 * user's day: init and the first cycle on the README sample, the forwarder pod running, a steady
 * cycle, conf changes, an invalid file, a restart, teardown. The gateway side is not the subject
 * here: the rules go to the scp and ssh stand-ins of test/bin.
 */

const FORWARDER = 'my-external-service1';
const README_SOURCES = [
  { namespace: 'ns1', service: 'my-service1', sourceIP: '192.168.122.200' },
  { namespace: 'ns2', service: 'my-service2', sourceIP: '192.168.122.201' },
];
const EXPECTED_RULES = fs.readFileSync(path.join(ROOT, 'test/fixtures/genrule/readme-sample/expected.yaml'), 'utf8');

async function clusterIP(namespace: string, name: string): Promise<string> {
  const service = await getObject(`/api/v1/namespaces/${namespace}/services/${name}`);
  return String(service?.spec?.clusterIP);
}

describe.skipIf(clusterSkipReason !== undefined)('bin/controller against a real control plane, under controller/rbac.yaml', () => {
  let bench: ClusterControllerBench;

  beforeAll(async () => {
    bench = await new ClusterControllerBench().init();
    await applyRbac();
    // my-pod1b fails its readiness probe: its endpoint is published as not ready.
    await createApp('ns1', 'my-service1', [
      { name: 'my-pod1', ip: '10.244.0.11' },
      { name: 'my-pod1b', ip: '10.244.0.13', ready: false },
    ]);
    await createApp('ns2', 'my-service2', [{ name: 'my-pod2', ip: '10.244.0.12' }]);
    bench.writeConf(`${FORWARDER}.yaml`, externalService(FORWARDER, README_SOURCES));
  });

  afterAll(async () => {
    await deleteNamespaces('ns1', 'ns2', FORWARDER_NAMESPACE);
    bench.dispose();
  });

  it('init creates the state ConfigMap and the secret, then the forwarder’s access, ConfigMap, pod and Service, which the API stores with its defaults', async () => {
    const first = await bench.cycle();
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toContain(`forwarder pod ${FORWARDER_NAMESPACE}/${FORWARDER} does not exist yet: its iptables rules are left out`);
    // Every request came from the controller's user, and RBAC allowed each one.
    expect(first.requests.length).toBeGreaterThan(0);
    expect(first.requests.filter((event) => event.responseStatus?.code === 403)).toEqual([]);
    expect(ClusterControllerBench.writes(first.requests).map((event) => `${event.verb} ${event.objectRef?.resource}`)).toEqual([
      'create secrets',
      'create configmaps',
      'create serviceaccounts',
      'create roles',
      'create rolebindings',
      'create configmaps',
      'create pods',
      'create services',
      'update configmaps',
    ]);

    const secret = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/secrets/my-ssh-key`);
    expect(secret).toMatchObject({ type: 'Opaque', data: { id_rsa: Buffer.from('not a real key\n').toString('base64') } });
    const pod = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/pods/${FORWARDER}`);
    expect(pod).toMatchObject({
      metadata: { labels: { externalService: FORWARDER, 'app.kubernetes.io/managed-by': 'k8s-ext-connector' } },
      spec: {
        restartPolicy: 'Always',
        dnsPolicy: 'ClusterFirst',
        serviceAccountName: `k8s-ext-forwarder-${FORWARDER}`,
        schedulerName: 'default-scheduler',
        terminationGracePeriodSeconds: 30,
        containers: [
          {
            name: 'forwarder',
            image: 'forwarder:0.1',
            imagePullPolicy: 'IfNotPresent',
            securityContext: { privileged: true },
            env: [
              { name: 'EXTERNAL_SERVICE_NAME', value: FORWARDER },
              { name: 'DATA_FILE', value: '/etc/external-service/config/data.yaml' },
              { name: 'RULES_CONFIGMAP', value: `${CONFIGMAP}-${FORWARDER}` },
              { name: 'RULES_CONFIGMAP_KEY', value: 'data.yaml' },
              { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
            ],
          },
        ],
      },
    });
    const volumes = pod?.spec?.volumes as { name: string; configMap?: unknown; secret?: unknown }[];
    expect(volumes.find((volume) => volume.name === 'data-file')).toEqual({ name: 'data-file', configMap: { name: `${CONFIGMAP}-${FORWARDER}`, defaultMode: 0o644 } });
    expect(volumes.find((volume) => volume.name === 'ssh-key-volume')).toEqual({ name: 'ssh-key-volume', secret: { secretName: 'my-ssh-key', defaultMode: 0o400 } });
    const service = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/services/${FORWARDER}`);
    expect(service).toMatchObject({
      spec: {
        type: 'ClusterIP',
        sessionAffinity: 'None',
        ipFamilies: ['IPv4'],
        selector: { externalService: FORWARDER },
        ports: [{ protocol: 'TCP', port: 8000, targetPort: 8000 }],
      },
    });
    expect(String(service?.spec?.clusterIP)).toMatch(/^10\.96\.\d+\.\d+$/);

    expect(await bench.rules(FORWARDER)).toContain('2049:192.168.122.139:8000,192.168.122.200');
    expect(bench.gatewayRules()).toContain('2049:192.168.122.139:8000,192.168.122.200');
    expect((await bench.configMap()).data ?? {}).toEqual({});
  });

  it('once the forwarder pod runs, publishes the rules genrule computes from the EndpointSlices: ready endpoints only', async () => {
    await cluster().node.setPodRunning(FORWARDER_NAMESPACE, FORWARDER, '10.244.0.50');
    const cycle = await bench.cycle();
    expect(cycle.exitCode, cycle.stderr).toBe(0);

    const expected = EXPECTED_RULES.replaceAll('10.96.0.11', '<ip1>')
      .replaceAll('10.96.0.12', '<ip2>')
      .replaceAll('<ip1>', await clusterIP('ns1', 'my-service1'))
      .replaceAll('<ip2>', await clusterIP('ns2', 'my-service2'));
    expect(await bench.genrule()).toBe(expected);
    expect(await bench.rules(FORWARDER)).not.toContain('10.244.0.13');
    await bench.expectEachReaderHolds(expected, [FORWARDER]);
  });

  it('a steady cycle makes ten reads and no write, and copies nothing to the gateway', async () => {
    const steady = await bench.cycle();
    expect(steady.exitCode, steady.stderr).toBe(0);
    expect(ClusterControllerBench.writes(steady.requests)).toEqual([]);
    expect(steady.deliveries).toEqual([]);
    expect(steady.requests.map((event) => `${event.verb} ${event.objectRef?.resource}`).sort()).toEqual([
      'get configmaps',
      'get namespaces',
      'get secrets',
      'list configmaps',
      'list endpointslices',
      'list pods',
      'list rolebindings',
      'list roles',
      'list serviceaccounts',
      'list services',
    ]);
  });

  it('status finds everything in place, and a saved snapshot gives the rules the cluster gives', async () => {
    const status = await bench.run(['status', bench.conf]);
    expect(status.exitCode, `${status.stdout}\n${status.stderr}`).toBe(0);
    const snapshot = path.join(bench.root, 'snapshot.json');
    const saved = await bench.run(['snapshot', '-o', snapshot]);
    expect(saved.exitCode, saved.stderr).toBe(0);
    const offline = await bench.run(['genrule', '--snapshot', snapshot, bench.conf]);
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(`${offline.stdout}\n`).toBe(await bench.genrule());
  });

  it('a port change replaces the Service keeping its cluster IP; several ports get names', async () => {
    const before = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/services/${FORWARDER}`);
    bench.writeConf(`${FORWARDER}.yaml`, externalService(FORWARDER, README_SOURCES, [8000, { port: 9000, targetPort: 9443 }]));
    const cycle = await bench.cycle();
    expect(cycle.exitCode, cycle.stderr).toBe(0);
    expect(ClusterControllerBench.writes(cycle.requests).map((event) => `${event.verb} ${event.objectRef?.resource}`)).toEqual([
      'update services',
      'update configmaps',
      'update configmaps',
    ]);
    const after = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/services/${FORWARDER}`);
    expect(after?.metadata.uid).toBe(before?.metadata.uid);
    expect(after?.spec?.clusterIP).toBe(before?.spec?.clusterIP);
    expect(after?.spec?.ports).toEqual([
      { name: 'tcp-8000', protocol: 'TCP', port: 8000, targetPort: 8000 },
      { name: 'tcp-9000', protocol: 'TCP', port: 9000, targetPort: 9443 },
    ]);
    expect(await bench.rules(FORWARDER)).toContain('2050:192.168.122.139:9443,192.168.122.200');
    expect(cycle.requests.filter((event) => event.responseStatus?.code === 403)).toEqual([]);
    await bench.expectEachReaderHolds(await bench.genrule(), [FORWARDER]);
  });

  it("deletes a removed ExternalService's pod, Service, ConfigMap and access, and nothing else", async () => {
    bench.writeConf('other.yaml', externalService('other', README_SOURCES.slice(0, 1), [7000]));
    const added = await bench.cycle();
    expect(added.exitCode, added.stderr).toBe(0);
    expect(await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/pods/other`)).toBeDefined();
    expect(await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/services/other`)).toBeDefined();

    bench.removeConf('other.yaml');
    const removed = await bench.cycle();
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(ClusterControllerBench.writes(removed.requests).map((event) => `${event.verb} ${event.objectRef?.resource}/${event.objectRef?.name}`)).toEqual([
      'delete pods/other',
      'delete services/other',
      `delete configmaps/${CONFIGMAP}-other`,
      'delete rolebindings/k8s-ext-forwarder-other',
      'delete roles/k8s-ext-forwarder-other',
      'delete serviceaccounts/k8s-ext-forwarder-other',
      `update configmaps/${CONFIGMAP}`,
    ]);
    // The lab node finishes the pod's graceful deletion, as a kubelet would.
    await expect.poll(() => getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/pods/other`), { timeout: 30_000 }).toBeUndefined();
    expect(await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/services/other`)).toBeUndefined();
    expect(await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/pods/${FORWARDER}`)).toBeDefined();
    expect(bench.gatewayRules()).not.toContain('"other"');
    expect(await bench.rules('other')).toBeUndefined();
  });

  it('an invalid file keeps its last valid version in force, also across runs, until it is fixed', async () => {
    const rules = await bench.rules(FORWARDER);
    const valid = fs.readFileSync(path.join(bench.conf, `${FORWARDER}.yaml`), 'utf8');
    bench.writeConf(`${FORWARDER}.yaml`, valid.replace('targetIP: 192.168.122.139', 'targetIP: 300.1.1.1'));
    for (let run = 0; run < 2; run++) {
      const cycle = await bench.cycle();
      expect(cycle.exitCode).toBe(2);
      expect(cycle.stderr).toContain(`${FORWARDER}.yaml: spec.targetIP: "300.1.1.1" is not an IPv4 address`);
      expect(cycle.stderr).toContain('its last valid version stays in force');
      expect(ClusterControllerBench.writes(cycle.requests)).toEqual([]);
    }
    expect(await bench.rules(FORWARDER)).toBe(rules);
    expect(await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/services/${FORWARDER}`)).toBeDefined();

    bench.writeConf(`${FORWARDER}.yaml`, valid);
    const fixed = await bench.cycle();
    expect(fixed.exitCode, fixed.stderr).toBe(0);
    expect(await bench.rules(FORWARDER)).toBe(rules);
  });

  it('remembers on the ConfigMap what the gateway received: a restarted controller does not copy the rules again', async () => {
    const loop = (extra: NodeJS.ProcessEnv): { output: () => string; stop: () => Promise<number | null> } => {
      const child = spawn(path.join(ROOT, 'bin/controller'), [bench.conf], { env: { NO_COLOR: '1', ...bench.env({ INTERVAL: '2', ...extra }) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { output: () => output, stop: async () => (child.kill('SIGTERM'), exited) };
    };
    const scpCalls = (): number => readStandinLog(bench.log).filter((call) => call.program === 'scp').length;

    const first = loop({});
    bench.writeConf(`${FORWARDER}.yaml`, externalService(FORWARDER, README_SOURCES, [8000]));
    await expect.poll(async () => (await bench.rules(FORWARDER))?.includes('9443'), { timeout: 30_000 }).toBe(false);
    const rules = bench.gatewayRules() ?? '';
    expect(rules).not.toContain('9443');
    const sha = createHash('sha256').update(rules).digest('hex');
    await expect
      .poll(async () => (await bench.configMap()).metadata.annotations?.['k8s-ext-connector/delivered-sha256'], { timeout: 30_000 })
      .toBe(JSON.stringify({ gw1: sha }));
    expect(await first.stop(), first.output()).toBe(0);
    const copies = scpCalls();

    const second = loop({ LOG_LEVEL: 'debug' });
    await expect.poll(() => second.output().match(/cycle done: nothing to change/g)?.length ?? 0, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    expect(await second.stop(), second.output()).toBe(0);
    expect(scpCalls()).toBe(copies);
    expect(second.output()).not.toContain('copy the rules');
  });

  it('teardown deletes everything of the controller and waits until its namespace is gone', async () => {
    const result = await bench.run(['teardown', bench.conf]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}`)).toBeUndefined();
    const deletions = ClusterControllerBench.writes(bench.requests()).filter((event) => event.verb === 'delete');
    expect(deletions.map((event) => event.user.username)).toEqual(deletions.map(() => CONTROLLER_USER));
    expect(deletions.map((event) => `${event.objectRef?.resource}/${event.objectRef?.name}`)).toEqual(
      expect.arrayContaining([
        `pods/${FORWARDER}`,
        `services/${FORWARDER}`,
        `configmaps/${CONFIGMAP}-${FORWARDER}`,
        `serviceaccounts/k8s-ext-forwarder-${FORWARDER}`,
        `roles/k8s-ext-forwarder-${FORWARDER}`,
        `rolebindings/k8s-ext-forwarder-${FORWARDER}`,
        `configmaps/${CONFIGMAP}`,
        'secrets/my-ssh-key',
        `namespaces/${FORWARDER_NAMESPACE}`,
      ]),
    );
    // The sources are not the controller's: they stay.
    expect(await getObject('/api/v1/namespaces/ns1/services/my-service1')).toBeDefined();
  });
});
