import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyRbac,
  ClusterControllerBench,
  cluster,
  clusterSkipReason,
  createApp,
  deleteNamespaces,
  externalService,
  FORWARDER_NAMESPACE,
  getObject,
} from '../helpers/cluster.js';
import { parseRules } from '../../lib/rules.js';

/**
 * Names that YAML would read as something else when unquoted (`true` a boolean, `0123` a number)
 * are valid Kubernetes names: they must reach the API, the labels and the rules as the strings they
 * are. The gateway side uses the scp and ssh stand-ins of test/bin.
 */

describe.skipIf(clusterSkipReason !== undefined)('names that YAML would retype', () => {
  let bench: ClusterControllerBench;

  beforeAll(async () => {
    bench = await new ClusterControllerBench().init();
    await applyRbac();
    await createApp('0123', 'true', [{ name: 'null', ip: '10.244.4.1' }]);
  });

  afterAll(async () => {
    await deleteNamespaces('0123', FORWARDER_NAMESPACE);
    bench.dispose();
  });

  it('an ExternalService named "true" with the source 0123/true gets its pod, Service, label and rules under those names', async () => {
    bench.writeConf('true.yaml', externalService('true', [{ namespace: '0123', service: 'true', sourceIP: '192.168.122.200' }]));
    const first = await bench.cycle();
    expect(first.exitCode, first.stderr).toBe(0);
    const pod = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/pods/true`);
    expect(pod?.metadata.labels?.externalService).toBe('true');
    const service = await getObject(`/api/v1/namespaces/${FORWARDER_NAMESPACE}/services/true`);
    expect(service?.spec?.selector).toEqual({ externalService: 'true' });

    await cluster().node.setPodRunning(FORWARDER_NAMESPACE, 'true', '10.244.4.50');
    const second = await bench.cycle();
    expect(second.exitCode, second.stderr).toBe(0);
    const rules = (await bench.rules('true')) ?? '';
    const parsed = parseRules(rules, 'data.yaml');
    expect(Object.keys(parsed.forwarder)).toEqual(['true']);
    expect(parsed.forwarder.true?.['iptables-rule']).toContain('--dst 10.244.4.50 --src 10.244.4.1 --dport 8000');
    const sourceIP = String((await getObject('/api/v1/namespaces/0123/services/true'))?.spec?.clusterIP);
    expect(parsed.forwarder.true?.['remote-ssh-tunnel']).toBe(`192.168.122.200:2049:${sourceIP}:80,192.168.122.200\n`);
    await bench.expectEachReaderHolds(await bench.genrule(), ['true']);
  });

  it('the same names unquoted in a conf file are reported as what YAML made of them, and change nothing', async () => {
    const rules = await bench.rules('true');
    bench.writeConf('true.yaml', externalService('true', [{ namespace: '0123', service: 'true', sourceIP: '192.168.122.200' }]).replaceAll('"', ''));
    const cycle = await bench.cycle();
    expect(cycle.exitCode).toBe(2);
    expect(cycle.stderr).toMatch(/true\.yaml: metadata\.name: .*true/);
    expect(ClusterControllerBench.writes(cycle.requests)).toEqual([]);
    expect(await bench.rules('true')).toBe(rules);
  });
});
