import { afterEach, describe, expect, it } from 'vitest';
import { seedKube } from '../helpers/cli.js';
import { ControllerBench, externalService, isMutating, README_SAMPLE } from './controller-run-fixture.js';

/** `bin/controller teardown CONF_DIR` against the recording stand-ins. */

let bench: ControllerBench;
afterEach(() => bench.remove());

describe('controller teardown', () => {
  it('deletes the pods and services, the forwarders’ access and ConfigMaps, the state ConfigMap, the secret and the namespace, in that order', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('my-external-service1.yaml', README_SAMPLE);
    expect((await bench.once()).exitCode).toBe(0);
    const before = bench.calls().length;

    const result = await bench.run(['teardown', bench.conf], { SSH_KEY_PATH: '', GATEWAY_NODE_IP: '' });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(
      bench
        .calls()
        .slice(before)
        .filter(isMutating)
        .map((call) => call.argv.join(' ')),
    ).toEqual([
      'delete pods my-external-service1 -n external-services --ignore-not-found',
      'delete services my-external-service1 -n external-services --ignore-not-found',
      'delete rolebindings.rbac.authorization.k8s.io k8s-ext-forwarder-my-external-service1 -n external-services --ignore-not-found',
      'delete roles.rbac.authorization.k8s.io k8s-ext-forwarder-my-external-service1 -n external-services --ignore-not-found',
      'delete serviceaccounts k8s-ext-forwarder-my-external-service1 -n external-services --ignore-not-found',
      'delete configmaps external-service-data-my-external-service1 external-service-data -n external-services --ignore-not-found',
      'delete secret my-ssh-key -n external-services --ignore-not-found',
      'delete namespace external-services --ignore-not-found',
    ]);
    expect(bench.object('namespaces', '_', 'external-services')).toBeUndefined();
  });

  it('also deletes what the controller left behind for files that are gone, but nothing it did not create', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('a.yaml', externalService('es-a'));
    bench.writeConf('b.yaml', externalService('es-b'));
    expect((await bench.once()).exitCode).toBe(0);
    seedKube(bench.kube, [{ kind: 'Pod', metadata: { namespace: 'external-services', name: 'someone-elses' } }]);
    bench.removeConf('b.yaml');
    const before = bench.calls().length;

    const result = await bench.run(['teardown', bench.conf]);
    expect(result.exitCode, result.stderr).toBe(0);
    const deletions = bench.calls().slice(before).filter(isMutating).map((call) => call.argv.join(' '));
    expect(deletions).toEqual(
      expect.arrayContaining([
        'delete pods es-a es-b -n external-services --ignore-not-found',
        'delete services es-a es-b -n external-services --ignore-not-found',
        'delete serviceaccounts k8s-ext-forwarder-es-a k8s-ext-forwarder-es-b -n external-services --ignore-not-found',
      ]),
    );
    expect(deletions.join('\n')).not.toContain('someone-elses');
  });

  it('never deletes a namespace, ConfigMap or secret it did not make (--namespace prod), and says what it kept and why', async () => {
    bench = new ControllerBench();
    seedKube(bench.kube, [
      { kind: 'Namespace', metadata: { name: 'prod' } },
      { kind: 'Pod', metadata: { namespace: 'prod', name: 'es-a' } },
      { kind: 'Pod', metadata: { namespace: 'prod', name: 'database' } },
      { kind: 'ConfigMap', metadata: { namespace: 'prod', name: 'external-service-data' }, data: {} },
      { kind: 'Secret', metadata: { namespace: 'prod', name: 'my-ssh-key' }, data: {} },
    ]);
    bench.writeConf('a.yaml', externalService('es-a'));
    const result = await bench.run(['teardown', '--namespace', 'prod', bench.conf]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(bench.calls().filter(isMutating)).toEqual([]);
    for (const [resource, name] of [['namespaces', 'prod'], ['pods', 'es-a'], ['pods', 'database'], ['configmaps', 'external-service-data'], ['secrets', 'my-ssh-key']]) {
      expect(bench.object(resource!, resource === 'namespaces' ? '_' : 'prod', name!), `${resource}/${name}`).toBeDefined();
    }
    expect(result.stderr).toMatch(/WARN .*namespace prod kept: it does not carry the label app\.kubernetes\.io\/managed-by=k8s-ext-connector/);
    expect(result.stderr).toMatch(/WARN .*pod es-a in namespace prod kept: it does not carry the label/);
    expect(result.stderr).toMatch(/WARN .*ConfigMap external-service-data in namespace prod kept/);
    expect(result.stderr).toMatch(/WARN .*secret my-ssh-key in namespace prod kept: the namespace is not one the controller made/);
    expect(result.stderr).toContain('teardown: nothing to remove');
  });

  it('exits 0 without deleting anything when there is nothing to delete', async () => {
    bench = new ControllerBench();
    const result = await bench.run(['teardown', bench.conf]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('teardown: nothing to remove');
    expect(bench.calls().filter(isMutating)).toEqual([]);
  });

  it('exits 1 and names the command when a deletion fails', async () => {
    bench = new ControllerBench();
    bench.writeConf('a.yaml', externalService('es-a'));
    expect((await bench.once()).exitCode).toBe(0);
    bench.failKubectl('^delete secret');
    const result = await bench.run(['teardown', bench.conf]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('failed: delete secret my-ssh-key');
    bench.failKubectl(undefined);
    await bench.teardownAndExpectClean();
  });
});
