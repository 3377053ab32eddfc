import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStandinLog } from '../helpers/cli.js';
import {
  applyRbac,
  ClusterControllerBench,
  cluster,
  clusterSkipReason,
  createApp,
  deleteNamespaces,
  externalService,
  FORWARDER_NAMESPACE,
} from '../helpers/cluster.js';

/**
 * The API server keeps no object over 1 MiB. A forwarder's rules that would not fit its ConfigMap are
 * reported with the limit named, and nothing already published is lost: that ConfigMap keeps the
 * previous rules, and the other forwarders get theirs. One ExternalService alone is made too large
 * (4,000 ports x 1 endpoint), while each of its blocks stays under the 8,192 lines a block may hold
 * (8,000 iptables rules, 4,000 tunnels). The gateway side uses the scp and ssh stand-ins of test/bin.
 */

const SOURCES = [{ namespace: 'big-apps', service: 'many', sourceIP: '192.168.122.200' }];
const PORTS = Array.from({ length: 4000 }, (_, index) => 10_000 + index);
const PODS = [{ name: 'many-0', ip: '10.244.5.10' }];

describe.skipIf(clusterSkipReason !== undefined)('rules over the 1 MiB object limit', () => {
  let bench: ClusterControllerBench;

  beforeAll(async () => {
    bench = await new ClusterControllerBench().init();
    await applyRbac();
    await createApp('big-apps', 'many', PODS);
  });

  afterAll(async () => {
    await deleteNamespaces('big-apps', FORWARDER_NAMESPACE);
    bench.dispose();
  });

  it('are reported with the limit named; the published rules and the gateway copy stay as they were, and publishing resumes once they fit', async () => {
    bench.writeConf('small.yaml', externalService('small', SOURCES));
    bench.writeConf('huge.yaml', externalService('huge', SOURCES, PORTS));
    // Without the forwarder pod's IP, the huge ExternalService has no iptables rules yet: they fit.
    const first = await bench.cycle();
    expect(first.exitCode, first.stderr).toBe(0);
    const published = (await bench.rules('huge')) ?? '';
    expect(published).toContain('"huge"');
    const delivered = bench.gatewayRules();
    expect(delivered).toContain('"huge"');

    await cluster().node.setPodRunning(FORWARDER_NAMESPACE, 'huge', '10.244.5.200');
    const scpBefore = readStandinLog(bench.log).filter((call) => call.program === 'scp').length;
    const tooLarge = await bench.cycle();
    expect(tooLarge.exitCode).toBe(1);
    expect(tooLarge.stderr).toMatch(/the rules of huge would make ConfigMap external-service-data-huge hold \d+ bytes of data, over the 1 MiB \(1048576 bytes\) a ConfigMap may hold: it keeps the previous rules/);
    // The pod's IP changes only the forwarder's own rules: the gateways' part stays as it was.
    expect(ClusterControllerBench.writes(tooLarge.requests)).toEqual([]);
    expect(await bench.rules('huge')).toBe(published);
    expect(bench.gatewayRules()).toBe(delivered);
    expect(readStandinLog(bench.log).filter((call) => call.program === 'scp')).toHaveLength(scpBefore);

    bench.writeConf('huge.yaml', externalService('huge', SOURCES, PORTS.slice(0, 10)));
    const fits = await bench.cycle();
    expect(fits.exitCode, fits.stderr).toBe(0);
    expect(await bench.rules('huge')).toContain('--dst 10.244.5.200 --src 10.244.5.10 --dport 10009');
    await bench.expectEachReaderHolds(await bench.genrule(), ['small', 'huge']);
  });
});
