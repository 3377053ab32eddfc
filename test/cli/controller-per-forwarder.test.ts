import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rememberedForm } from '../../controller/desired.js';
import { parseExternalService } from '../../lib/externalservice.js';
import { seedKube } from '../helpers/cli.js';
import { ControllerBench, externalService, isMutating } from './controller-run-fixture.js';

/**
 * Rules per forwarder against the recording stand-ins: calls that do not grow with the number of
 * ExternalServices, one object's failure named in a List write, and the upgrade from the layout
 * with one ConfigMap for every forwarder.
 */

let bench: ControllerBench;
afterEach(() => bench.remove());

const NS = 'external-services';

function names(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `es-${index}`);
}

describe('controller --once with rules per forwarder', () => {
  it('makes as many kubectl calls on a first and a steady cycle for 40 ExternalServices as for 20', async () => {
    const calls = async (count: number): Promise<{ first: number; steady: number; steadyWrites: number }> => {
      bench = new ControllerBench();
      bench.seedReadmeCluster();
      for (const name of names(count)) bench.writeConf(`${name}.yaml`, externalService(name));
      const first = await bench.cycle();
      expect(first.exitCode, first.stderr).toBe(0);
      expect((await bench.once()).exitCode).toBe(0); // the pods' IPs reach the rules
      const steady = await bench.cycle();
      expect(steady.exitCode, steady.stderr).toBe(0);
      for (const name of names(count)) expect(bench.forwarderRules(name)).toContain(`"${name}":`);
      const kubectl = (list: typeof first.calls): number => list.filter((call) => call.program === 'kubectl').length;
      const result = { first: kubectl(first.calls), steady: kubectl(steady.calls), steadyWrites: steady.calls.filter(isMutating).length };
      await bench.teardownAndExpectClean();
      bench.remove();
      return result;
    };
    const few = await calls(20);
    const many = await calls(40);
    expect(many).toEqual(few);
    expect(few.steadyWrites).toBe(0);
    bench = new ControllerBench(); // for afterEach
    // Six controller runs and two teardowns, each with a dozen stand-in processes: on a loaded 2-core machine, more than the default 30 s.
  }, 120_000);

  it('names the one object that failed in a List write, writes the others, and makes it on the next cycle', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    for (const name of ['es-a', 'es-b', 'es-c']) bench.writeConf(`${name}.yaml`, externalService(name));
    fs.writeFileSync(path.join(bench.kube, '.fail-object'), '^configmaps/external-service-data-es-b$\n');

    const failed = await bench.cycle();
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain('configmaps \\"external-service-data-es-b\\": stand-in failure injected');
    expect(bench.forwarderRules('es-a')).toBeDefined();
    expect(bench.forwarderRules('es-b')).toBeUndefined();
    expect(bench.forwarderRules('es-c')).toBeDefined();
    expect(bench.object('pods', NS, 'es-b')).toBeDefined();

    fs.rmSync(path.join(bench.kube, '.fail-object'));
    const retried = await bench.cycle();
    expect(retried.exitCode, retried.stderr).toBe(0);
    expect(bench.forwarderRules('es-b')).toContain('"es-b":');
    await bench.teardownAndExpectClean();
  });

  it('upgrades the single-ConfigMap layout: makes the old pods again, moves each file’s last valid version to its forwarder, and drops the old rules', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    const oldValid = externalService('es-old', { targetIP: '192.168.122.77' });
    const parsed = parseExternalService(oldValid, path.join(bench.conf, 'old.yaml')).service;
    if (parsed === undefined) throw new Error('the sample must be valid');
    const managed = { 'app.kubernetes.io/managed-by': 'k8s-ext-connector' };
    // What an earlier version left: every forwarder mounting the one ConfigMap, which held all
    // the rules and every file's last valid version.
    const oldPod = (name: string): Record<string, unknown> => ({
      kind: 'Pod',
      metadata: { namespace: NS, name, labels: { externalService: name, ...managed } },
      spec: {
        containers: [{ name: 'forwarder', image: 'forwarder:0.1', env: [{ name: 'EXTERNAL_SERVICE_NAME', value: name }] }],
        volumes: [{ name: 'data-file', configMap: { name: 'external-service-data' } }],
      },
      status: { phase: 'Running', podIP: name === 'es-a' ? '10.244.1.50' : '10.244.1.51' },
    });
    seedKube(bench.kube, [
      { kind: 'Namespace', metadata: { name: NS, labels: managed } },
      { kind: 'Secret', metadata: { namespace: NS, name: 'my-ssh-key' }, data: {} },
      {
        kind: 'ConfigMap',
        metadata: {
          namespace: NS,
          name: 'external-service-data',
          labels: managed,
          annotations: { 'k8s-ext-connector/last-valid-conf': JSON.stringify({ 'old.yaml': rememberedForm(parsed) }), 'k8s-ext-connector/delivered-sha256': '{}' },
        },
        data: { 'data.yaml': '"forwarder": {}\n"gateway": {}\n' },
      },
      oldPod('es-a'),
      oldPod('es-old'),
    ]);
    bench.writeConf('a.yaml', externalService('es-a'));
    bench.writeConf('old.yaml', 'kind: ExternalService\n'); // invalid now: its last valid version stays in force

    const upgraded = await bench.cycle();
    expect(upgraded.exitCode).toBe(2);
    const mutating = upgraded.calls.filter(isMutating).map((call) => call.argv.slice(0, 4).join(' '));
    expect(mutating).toContain('delete pods es-a es-old');
    for (const name of ['es-a', 'es-old']) {
      expect(bench.object('pods', NS, name)).toMatchObject({
        spec: { serviceAccountName: `k8s-ext-forwarder-${name}`, volumes: [{ configMap: { name: `external-service-data-${name}` } }, {}] },
      });
    }
    expect(bench.forwarderRules('es-old')).toContain('192.168.122.77');
    expect(bench.configMap('es-old')?.metadata.annotations?.['k8s-ext-connector/last-valid-conf']).toBe(JSON.stringify({ 'old.yaml': rememberedForm(parsed) }));

    const settled = await bench.cycle();
    expect(settled.exitCode).toBe(2);
    expect(settled.stderr).toMatch(/old\.yaml: its last valid version stays in force/);
    expect(bench.configMap()?.data).toEqual({});
    expect(Object.keys(bench.configMap()?.metadata.annotations ?? {})).toEqual(['k8s-ext-connector/delivered-sha256']);
    expect(bench.forwarderRules('es-old')).toContain('192.168.122.77');
    await bench.teardownAndExpectClean();
  });
});
