import { afterEach, describe, expect, it } from 'vitest';
import { ControllerBench, externalService, isMutating, README_SAMPLE } from './controller-run-fixture.js';

/** `bin/controller status CONF_DIR` against the recording stand-ins: read-only, exit 1 when something is wrong. */

let bench: ControllerBench;
afterEach(() => bench.remove());

describe('controller status', () => {
  it('shows the objects, each forwarder’s rules and each gateway as current once applied, and exits 0', async () => {
    bench = new ControllerBench('gw1 gw2');
    bench.seedReadmeCluster();
    bench.writeConf('my-external-service1.yaml', README_SAMPLE);
    for (let cycle = 0; cycle < 2; cycle++) expect((await bench.once()).exitCode).toBe(0);

    const result = await bench.run(['status', bench.conf]);
    expect(result.exitCode, result.stdout).toBe(0);
    expect(result.stdout).toContain('configmap external-service-data: present');
    expect(result.stdout).toMatch(/my-external-service1 \(my-external-service1\.yaml\): pod 10\.244\.1\.1; service 10\.96\.100\.1; rules current/);
    expect(result.stdout).toContain('gw1: holds the current rules');
    expect(result.stdout).toContain('gw2: holds the current rules');
    expect(result.stdout).toContain('status: everything is applied');
    expect(bench.calls().slice(-7).filter(isMutating)).toEqual([]);
    await bench.teardownAndExpectClean();
  });

  it('reports invalid files, missing pods, outdated rules and gateways without the current rules, and exits 2 for the invalid file', async () => {
    bench = new ControllerBench('gw1');
    bench.seedReadmeCluster();
    bench.writeConf('a.yaml', externalService('es-a'));
    bench.writeConf('b.yaml', externalService('es-b'));
    for (let cycle = 0; cycle < 2; cycle++) expect((await bench.once()).exitCode).toBe(0);
    bench.writeConf('a.yaml', 'kind: ExternalService\n');
    bench.writeConf('b.yaml', externalService('es-b', { targetIP: '192.168.122.98' }));
    bench.writeConf('c.yaml', externalService('es-c', { targetIP: '192.168.122.99' }));

    const result = await bench.run(['status', bench.conf], { GATEWAY_NODE_IP: 'gw1,gw9' });
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toContain('es-a (a.yaml, last valid version): pod 10.244.1.1');
    expect(result.stdout).toContain('a.yaml: metadata: is missing');
    expect(result.stdout).toContain('create forwarder pod es-c (missing)');
    expect(result.stdout).toContain('es-b (b.yaml): pod 10.244.1.2; service 10.96.100.2; rules older');
    expect(result.stdout).toContain('create ConfigMap external-service-data-es-c (missing)');
    expect(result.stdout).toContain('publish ConfigMap external-service-data-es-b (new rules, last valid conf)');
    expect(result.stdout).toContain('publish ConfigMap external-service-data (delivery state)');
    expect(result.stdout).toContain('gateway gw1 holds older rules');
    expect(result.stdout).toContain('gateway gw9 has never received rules');
    await bench.teardownAndExpectClean();
  });
});
