import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { forwarderDocument, gatewayDocument } from '../../controller/desired.js';
import { parseRules, serializeRules } from '../../lib/rules.js';
import { ControllerBench, externalService, isMutating, README_SAMPLE } from './controller-run-fixture.js';

/**
 * `bin/controller --once CONF_DIR` against recording stand-ins: kubectl (a file-backed API
 * server), scp and ssh (a file tree per gateway host). Each scenario ends with a teardown.
 */

let bench: ControllerBench;
afterEach(() => bench.remove());

/**
 * What genrule prints now (the whole document), and that each reader holds its part of it: the
 * gateway hosts the gateway sections and every tunnel line, each forwarder ConfigMap its own entry.
 */
async function expectEachReaderHoldsItsPart(names: readonly string[], hosts: readonly string[] = ['gw1']): Promise<string> {
  const genrule = await bench.run(['genrule', bench.conf]);
  expect(genrule.exitCode, genrule.stderr).toBe(0);
  const whole = parseRules(`${genrule.stdout}\n`, 'genrule'); // runBin strips the final newline
  for (const host of hosts) expect(bench.gatewayRules(host)).toBe(serializeRules(gatewayDocument(whole)));
  for (const name of names) expect(bench.forwarderRules(name)).toBe(serializeRules(forwarderDocument(whole, name)));
  return `${genrule.stdout}\n`;
}

describe('controller --once on the README sample', () => {
  beforeEach(() => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('my-external-service1.yaml', README_SAMPLE);
  });

  it('creates the objects, publishes and delivers the rules, then converges to zero changes', async () => {
    const first = await bench.cycle();
    expect(first.exitCode, first.stderr).toBe(0);

    expect(bench.object('namespaces', '_', 'external-services')).toBeDefined();
    expect(bench.object('secrets', 'external-services', 'my-ssh-key')).toMatchObject({
      data: { id_rsa: Buffer.from('not a real key\n').toString('base64') },
    });
    expect(bench.object('pods', 'external-services', 'my-external-service1')).toMatchObject({
      metadata: { labels: { externalService: 'my-external-service1', 'app.kubernetes.io/managed-by': 'k8s-ext-connector' } },
      spec: {
        containers: [
          {
            image: 'forwarder:0.1',
            securityContext: { privileged: true },
            env: [
              { name: 'EXTERNAL_SERVICE_NAME', value: 'my-external-service1' },
              { name: 'DATA_FILE', value: '/etc/external-service/config/data.yaml' },
              { name: 'RULES_CONFIGMAP', value: 'external-service-data-my-external-service1' },
              { name: 'RULES_CONFIGMAP_KEY', value: 'data.yaml' },
              { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            ],
          },
        ],
        serviceAccountName: 'k8s-ext-forwarder-my-external-service1',
        volumes: [{ configMap: { name: 'external-service-data-my-external-service1' } }, { secret: { secretName: 'my-ssh-key', defaultMode: 256 } }],
      },
    });
    expect(bench.object('serviceaccounts', 'external-services', 'k8s-ext-forwarder-my-external-service1')).toBeDefined();
    expect(bench.object('roles', 'external-services', 'k8s-ext-forwarder-my-external-service1')).toMatchObject({
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['external-service-data-my-external-service1'], verbs: ['get', 'list', 'watch'] }],
    });
    expect(bench.object('rolebindings', 'external-services', 'k8s-ext-forwarder-my-external-service1')).toMatchObject({
      roleRef: { kind: 'Role', name: 'k8s-ext-forwarder-my-external-service1' },
      subjects: [{ kind: 'ServiceAccount', name: 'k8s-ext-forwarder-my-external-service1', namespace: 'external-services' }],
    });
    expect(bench.object('services', 'external-services', 'my-external-service1')).toMatchObject({
      spec: { selector: { externalService: 'my-external-service1' }, ports: [{ protocol: 'TCP', port: 8000, targetPort: 8000 }] },
    });
    // The forwarder's ConfigMap is created with its rules; the state ConfigMap holds no rules.
    expect(bench.forwarderRules('my-external-service1')).toContain('2049:192.168.122.139:8000,192.168.122.200');
    expect(bench.configMap()?.data).toEqual({});
    expect(bench.gatewayRules()).toContain('2049:192.168.122.139:8000,192.168.122.200');
    expect(bench.gatewayFiles()).toEqual(['rules.yaml']);
    expect(first.calls.filter((call) => call.program === 'scp')).toHaveLength(1);

    // The pod got its IP after the first snapshot: the next cycle adds its iptables rules.
    const second = await bench.cycle();
    expect(second.exitCode, second.stderr).toBe(0);
    const rules = bench.forwarderRules('my-external-service1') ?? '';
    expect(rules).toContain(
      'PREROUTING -t nat -m tcp -p tcp --dst 10.244.1.1 --src 10.244.0.11 --dport 8000 -j DNAT --to-destination 10.244.1.1:2049',
    );
    expect(bench.gatewayRules()).not.toContain('--dst 10.244.1.1');
    expect(bench.gatewayRules()).toContain('192.168.122.201:2049:10.96.0.12:80,192.168.122.201');
    await expectEachReaderHoldsItsPart(['my-external-service1']);

    const third = await bench.cycle();
    expect(third.exitCode, third.stderr).toBe(0);
    expect(third.calls.filter(isMutating)).toEqual([]);
    // Ten reads: the lists as the API server's own JSON (kubectl get --raw), the three single objects by name.
    const selector = 'labelSelector=app.kubernetes.io%2Fmanaged-by%3Dk8s-ext-connector';
    expect(third.calls.filter((call) => call.program === 'kubectl').map((call) => call.argv.join(' ')).sort()).toEqual([
      'get --raw /api/v1/namespaces/external-services/configmaps?' + selector,
      'get --raw /api/v1/namespaces/external-services/pods',
      'get --raw /api/v1/namespaces/external-services/serviceaccounts?' + selector,
      'get --raw /api/v1/services',
      'get --raw /apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io%2Fservice-name',
      'get --raw /apis/rbac.authorization.k8s.io/v1/namespaces/external-services/rolebindings?' + selector,
      'get --raw /apis/rbac.authorization.k8s.io/v1/namespaces/external-services/roles?' + selector,
      'get configmap external-service-data -n external-services --ignore-not-found -o json',
      'get namespace external-services -o name --ignore-not-found',
      'get secret my-ssh-key -n external-services -o name --ignore-not-found',
    ]);

    await bench.teardownAndExpectClean();
  });

  it('prints every mutating command instead of running it under DEBUG=true', async () => {
    const result = await bench.once({ DEBUG: 'true' });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('kubectl create -f -\n{\n  "apiVersion": "v1",\n  "kind": "Namespace"');
    expect(result.stdout).toContain(`kubectl create secret generic my-ssh-key -n external-services --from-file=id_rsa=${bench.key}`);
    expect(result.stdout).toMatch(/^scp -i \S+ -o BatchMode=yes \S+rules\.yaml gw1:\/tmp\/rules\.yaml\.tmp-[0-9a-f]{16}$/m);
    expect(result.stdout).toMatch(/^ssh -i \S+ -o BatchMode=yes gw1 mv -f -- \/tmp\/rules\.yaml\.tmp-[0-9a-f]{16} \/tmp\/rules\.yaml$/m);
    expect(result.stdout).toContain('kubectl replace -f -');
    expect(bench.calls().filter(isMutating)).toEqual([]);
    expect(bench.object('namespaces', '_', 'external-services')).toBeUndefined();
    await bench.teardownAndExpectClean();
  });

  it('says which required setting is missing', async () => {
    const result = await bench.once({ SSH_KEY_PATH: '' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('SSH_KEY_PATH is required to be passed as an environment variable');
    const noGateway = await bench.once({ GATEWAY_NODE_IP: '' });
    expect(noGateway.stderr).toContain('GATEWAY_NODE_IP is required');
    expect(bench.calls()).toEqual([]);
    await bench.teardownAndExpectClean();
  });

  it('rejects a gateway host that ssh would read as an option and a gateway path a shell would interpret', async () => {
    const host = await bench.once({ GATEWAY_NODE_IP: 'gw1,-oProxyCommand=touch' });
    expect(host.exitCode).toBe(2);
    expect(host.stderr).toContain('GATEWAY_NODE_IP: "-oProxyCommand=touch" is not a host name or IPv4 address');
    const remotePath = await bench.run(['--once', '--gateway-path', '/tmp/rules;reboot', bench.conf]);
    expect(remotePath.exitCode).toBe(2);
    expect(remotePath.stderr).toContain('CONFIG_PATH_ON_GATEWAY_NODE: "/tmp/rules;reboot" is not a path');
    expect(bench.calls()).toEqual([]);
    await bench.teardownAndExpectClean();
  });
});

describe('controller --once after a change', () => {
  beforeEach(async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('a.yaml', externalService('es-a'));
    bench.writeConf('b.yaml', externalService('es-b', { sourceIP: '192.168.122.201' }));
    for (let cycle = 0; cycle < 2; cycle++) expect((await bench.once()).exitCode).toBe(0);
  });

  it('updates the service, cleans up a removed ExternalService and delivers the new rules', async () => {
    const before = bench.gatewayRules();
    bench.writeConf('a.yaml', externalService('es-a', { ports: [8000, 9000] }));
    bench.removeConf('b.yaml');

    const result = await bench.cycle();
    expect(result.exitCode, result.stderr).toBe(0);
    expect(bench.object('services', 'external-services', 'es-a')).toMatchObject({
      spec: {
        ports: [
          { name: 'tcp-8000', port: 8000, targetPort: 8000 },
          { name: 'tcp-9000', port: 9000, targetPort: 9000 },
        ],
      },
    });
    expect(bench.object('pods', 'external-services', 'es-b')).toBeUndefined();
    expect(bench.object('services', 'external-services', 'es-b')).toBeUndefined();
    for (const resource of ['configmaps', 'serviceaccounts', 'roles', 'rolebindings']) {
      expect(fs.readdirSync(path.join(bench.kube, resource, 'external-services')).filter((file) => file.includes('es-b'))).toEqual([]);
    }
    const rules = bench.gatewayRules() ?? '';
    expect(rules).not.toBe(before);
    expect(rules).not.toContain('es-b');
    expect(rules).toContain('2050:192.168.122.139:9000,192.168.122.200');
    await expectEachReaderHoldsItsPart(['es-a']);
    // The gateway first, then the forwarder's ConfigMap and the delivery state (one List).
    expect(result.calls.filter(isMutating).map((call) => (call.program === 'kubectl' ? call.argv.slice(0, 3).join(' ') : call.program))).toEqual([
      'replace -f -',
      'delete pods es-b',
      'delete services es-b',
      'delete configmaps external-service-data-es-b',
      'delete rolebindings.rbac.authorization.k8s.io k8s-ext-forwarder-es-b',
      'delete roles.rbac.authorization.k8s.io k8s-ext-forwarder-es-b',
      'delete serviceaccounts k8s-ext-forwarder-es-b',
      'scp',
      'ssh',
      'replace -f -',
    ]);
    const published = JSON.parse(result.calls.filter(isMutating).at(-1)?.stdin ?? '{}') as { kind: string; items: { metadata: { name: string } }[] };
    expect(published.kind).toBe('List');
    expect(published.items.map((item) => item.metadata.name)).toEqual(['external-service-data-es-a', 'external-service-data']);
    await bench.teardownAndExpectClean();
  });

  it('publishes nothing when a cluster read fails, and catches up once it works again', async () => {
    const published = bench.forwarderRules('es-a');
    const delivered = bench.gatewayRules();
    bench.writeConf('a.yaml', externalService('es-a', { targetIP: '192.168.122.150' }));
    bench.failKubectl('^get --raw \\S*/endpointslices');

    const failed = await bench.cycle();
    expect(failed.exitCode).not.toBe(0);
    expect(failed.stderr).toContain('stand-in failure injected');
    expect(failed.calls.filter(isMutating)).toEqual([]);
    expect(bench.forwarderRules('es-a')).toBe(published);
    expect(bench.gatewayRules()).toBe(delivered);

    bench.failKubectl(undefined);
    const recovered = await bench.cycle();
    expect(recovered.exitCode, recovered.stderr).toBe(0);
    expect(bench.gatewayRules()).toContain('192.168.122.150');
    await expectEachReaderHoldsItsPart(['es-a', 'es-b']);
    await bench.teardownAndExpectClean();
  });

  it('keeps the last valid version of a file that turns invalid, and ignores a new invalid file, leaving the others’ rules alone', async () => {
    const published = [bench.forwarderRules('es-a'), bench.forwarderRules('es-b')];
    bench.writeConf('b.yaml', externalService('es-b', { sourceIP: '300.1.1.1' }));
    bench.writeConf('c.yaml', 'kind: ExternalService\nmetadata: {name: es-c}\nspec: {targetIP: 192.168.122.139, ports: [{port: 70000}]}\n');

    for (let run = 0; run < 2; run++) {
      // Twice: the last valid version is read back from the cluster, not from memory.
      const result = await bench.cycle();
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('b.yaml: spec.sources[0].sourceIP: "300.1.1.1" is not an IPv4 address');
      expect(result.stderr).toContain('c.yaml: spec.ports[0].port: 70000 is not a port number');
      expect(result.stderr).toMatch(/b\.yaml: its last valid version stays in force/);
      expect(result.calls.filter(isMutating)).toEqual([]);
      expect([bench.forwarderRules('es-a'), bench.forwarderRules('es-b')]).toEqual(published);
      expect(bench.object('pods', 'external-services', 'es-b')).toBeDefined();
    }

    bench.writeConf('b.yaml', externalService('es-b', { sourceIP: '192.168.122.202' }));
    bench.removeConf('c.yaml');
    const fixed = await bench.cycle();
    expect(fixed.exitCode, fixed.stderr).toBe(0);
    expect(bench.gatewayRules()).toContain('192.168.122.202');
    await bench.teardownAndExpectClean();
  });
});

describe('controller --once delivering to the gateways', () => {
  beforeEach(() => {
    bench = new ControllerBench('gw1, gw2');
    bench.seedReadmeCluster();
    bench.writeConf('my-external-service1.yaml', README_SAMPLE);
  });

  it('retries a failed delivery on the next cycle, per gateway host, and remembers what each received', async () => {
    bench.failGateway('gw2', true);
    const failed = await bench.cycle();
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain('failed: copy the rules to gw2');
    expect(bench.gatewayRules('gw1')).toContain('2049:192.168.122.139:8000,192.168.122.200');
    expect(bench.gatewayRules('gw2')).toBeUndefined();

    bench.failGateway('gw2', false);
    const retried = await bench.cycle();
    expect(retried.exitCode, retried.stderr).toBe(0);
    // The pod's IP changed the rules, so both get them; gw2 gets them for the first time.
    await expectEachReaderHoldsItsPart(['my-external-service1'], ['gw1', 'gw2']);

    const settled = await bench.cycle();
    expect(settled.calls.filter(isMutating)).toEqual([]);

    bench.failGateway(undefined, true);
    bench.writeConf('my-external-service1.yaml', README_SAMPLE.replace('192.168.122.139', '192.168.122.140'));
    const allFail = await bench.cycle();
    expect(allFail.exitCode).toBe(1);
    // The forwarders wait for the gateways: a forwarder must not ask for a tunnel its gateway does not permit yet.
    expect(bench.forwarderRules('my-external-service1')).toContain('192.168.122.140');
    expect(bench.gatewayRules('gw1')).not.toContain('192.168.122.140');

    bench.failGateway(undefined, false);
    const caughtUp = await bench.cycle();
    expect(caughtUp.exitCode, caughtUp.stderr).toBe(0);
    expect(caughtUp.calls.filter((call) => call.program === 'scp').map((call) => call.argv.at(-1)?.split(':')[0])).toEqual(['gw1', 'gw2']);
    expect(bench.gatewayRules('gw1')).toContain('192.168.122.140');
    expect(bench.gatewayFiles('gw2')).toEqual(['rules.yaml']);
    await bench.teardownAndExpectClean();
  });
});

describe('controller --once with a hostile name', () => {
  it('rejects a name with quotes, spaces and $(...) before any kubectl call carries it, and runs no shell', async () => {
    bench = new ControllerBench();
    const marker = path.join(bench.root, 'pwned');
    const shells = path.join(bench.root, 'shells');
    fs.mkdirSync(shells);
    for (const shell of ['sh', 'bash', 'dash']) {
      fs.writeFileSync(path.join(shells, shell), `#!${process.execPath}\nrequire('fs').writeFileSync(${JSON.stringify(marker)}, 'shell ran');\n`, { mode: 0o755 });
    }
    const name = `evil "name" 'x' $(touch ${marker}) \`touch ${marker}\``;
    bench.writeConf('evil.yaml', externalService('placeholder').replace('name: placeholder', `name: ${JSON.stringify(name)}`));

    const result = await bench.cycle({ PATH: `${shells}:${bench.env().PATH ?? ''}` });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('evil.yaml: metadata.name: ');
    expect(result.stderr).toContain('is not a DNS-1035 label');
    const recorded = JSON.stringify(result.calls);
    expect(recorded).not.toContain('touch');
    expect(recorded).not.toContain('evil');
    expect(fs.existsSync(marker)).toBe(false);
    await bench.teardownAndExpectClean();
    expect(fs.existsSync(marker)).toBe(false);
  });
});
