import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateRules } from '../../../controller/genrule.js';
import { parseSnapshot, snapshotFromObjects, type ClusterSnapshot, type ServiceInfo } from '../../../controller/snapshot.js';
import { parseExternalService, type ExternalService } from '../../../lib/externalservice.js';
import { blockLines, parseRules, serializeRules, type RulesDocument } from '../../../lib/rules.js';
import { ROOT } from '../../helpers/cli.js';

const NS = 'external-services';
const TARGET = '192.168.122.139';
const IP1 = '192.168.122.200';
const IP2 = '192.168.122.201';

/** `ns/name@ip` sources, `!` suffix for bidirectional: false. */
function es(name: string, sources: string[], targetPorts: number[], targetIP = TARGET): ExternalService {
  return {
    name,
    targetIP,
    sources: sources.map((text) => {
      const [ref = '', ip = ''] = text.replace(/!$/, '').split('@');
      const [namespace = '', serviceName = ''] = ref.split('/');
      return { service: { namespace, name: serviceName }, sourceIP: ip, bidirectional: !text.endsWith('!') };
    }),
    ports: targetPorts.map((port, index) => ({ protocol: 'TCP', port: 10000 + index, targetPort: port })),
  };
}

function svc(ref: string, clusterIP: string | undefined, ports: number[], type = 'ClusterIP'): ServiceInfo {
  const [namespace = '', name = ''] = ref.split('/');
  return { namespace, name, type, clusterIP, ports: ports.map((port) => ({ name: undefined, protocol: 'TCP', port, targetPort: port })), selector: {}, labels: {}, annotations: {} };
}

function snapshot(services: ServiceInfo[], endpoints: Record<string, string[]> = {}, pods: Record<string, string | undefined> = {}): ClusterSnapshot {
  return {
    pods: Object.entries(pods).map(([name, podIP]) => ({ namespace: NS, name, podIP, labels: {} })),
    services,
    endpoints: Object.entries(endpoints).map(([ref, readyIPs]) => {
      const [namespace = '', name = ''] = ref.split('/');
      return { namespace, name, readyIPs };
    }),
  };
}

interface Lines {
  ssh?: string[];
  remote?: string[];
  iptables?: string[];
}

function linesOf(rules: RulesDocument): { forwarder: Record<string, Required<Lines>>; gateway: Record<string, string[]> } {
  return {
    forwarder: Object.fromEntries(
      Object.entries(rules.forwarder).map(([name, entry]) => [
        name,
        { ssh: blockLines(entry['ssh-tunnel']), remote: blockLines(entry['remote-ssh-tunnel']), iptables: blockLines(entry['iptables-rule']) },
      ]),
    ),
    gateway: Object.fromEntries(Object.entries(rules.gateway).map(([ip, entry]) => [ip, blockLines(entry['iptables-rule'])])),
  };
}

const dnat = (pod: string, ep: string, targetPort: number, fwdPort: number, target = TARGET): string[] => [
  `PREROUTING -t nat -m tcp -p tcp --dst ${pod} --src ${ep} --dport ${targetPort} -j DNAT --to-destination ${pod}:${fwdPort}`,
  `POSTROUTING -t nat -m tcp -p tcp --dst ${target} --dport ${fwdPort} -j SNAT --to-source ${pod}`,
];
const gw = (ip: string, svcPort: number, remotePort: number, target = TARGET): string[] => [
  `PREROUTING -t nat -m tcp -p tcp --dst ${ip} --src ${target} --dport ${svcPort} -j DNAT --to-destination ${ip}:${remotePort}`,
  `POSTROUTING -t nat -m tcp -p tcp --dst ${target} --dport ${remotePort} -j SNAT --to-source ${ip}`,
];

describe('generateRules on the README sample', () => {
  const fixture = path.join(ROOT, 'test/fixtures/genrule/readme-sample');
  const confFile = path.join(fixture, 'conf/my-external-service1.yaml');
  const service = parseExternalService(fs.readFileSync(confFile, 'utf8'), confFile).service;
  const cluster = parseSnapshot(fs.readFileSync(path.join(fixture, 'snapshot.json'), 'utf8'), 'snapshot.json');

  it("prints the SPEC's worked example byte for byte, as genrule.py prints it", () => {
    expect(service).toBeDefined();
    const { rules, warnings } = generateRules([service!], cluster, { forwarderNamespace: NS });
    expect(serializeRules(rules)).toBe(fs.readFileSync(path.join(fixture, 'expected.yaml'), 'utf8'));
    expect(warnings).toEqual([]);
  });

  it('writes rules that the forwarder and the gateway parse back unchanged', () => {
    const { rules } = generateRules([service!], cluster, { forwarderNamespace: NS });
    expect(parseRules(serializeRules(rules), 'data.yaml')).toEqual(rules);
  });

  it('gives the same rules on a rerun with nothing changed', () => {
    const first = serializeRules(generateRules([service!], cluster, { forwarderNamespace: NS }).rules);
    expect(serializeRules(generateRules([service!], cluster, { forwarderNamespace: NS }).rules)).toBe(first);
  });
});

describe('generateRules port allocation', () => {
  const services = [svc('ns1/s1', '10.96.0.11', [80]), svc('ns2/s2', '10.96.0.12', [80]), svc('ns3/s3', '10.96.0.13', [80, 443])];
  const endpoints = { 'ns1/s1': ['10.244.0.11'], 'ns2/s2': ['10.244.0.12'], 'ns3/s3': ['10.244.0.13'] };
  const pods = { a: '10.244.9.1', b: '10.244.9.2' };

  it.each<{ title: string; services: ExternalService[]; cluster: ClusterSnapshot; forwarder: Record<string, Lines>; gateway: Record<string, string[]> }>([
    {
      title: 'allocates local ports per file and remote ports per source IP across files',
      services: [es('a', ['ns1/s1@' + IP1, 'ns2/s2@' + IP2], [8000]), es('b', ['ns3/s3@' + IP1], [8000, 9000], '192.168.122.140')],
      cluster: snapshot(services, endpoints, pods),
      forwarder: {
        a: {
          ssh: [`2049:${TARGET}:8000,${IP1}`, `2050:${TARGET}:8000,${IP2}`],
          remote: [`${IP1}:2049:10.96.0.11:80,${IP1}`, `${IP2}:2049:10.96.0.12:80,${IP2}`],
          iptables: [...dnat('10.244.9.1', '10.244.0.11', 8000, 2049), ...dnat('10.244.9.1', '10.244.0.12', 8000, 2050)],
        },
        b: {
          ssh: [`2049:192.168.122.140:8000,${IP1}`, `2050:192.168.122.140:9000,${IP1}`],
          remote: [`${IP1}:2050:10.96.0.13:80,${IP1}`, `${IP1}:2051:10.96.0.13:443,${IP1}`],
          iptables: [...dnat('10.244.9.2', '10.244.0.13', 8000, 2049, '192.168.122.140'), ...dnat('10.244.9.2', '10.244.0.13', 9000, 2050, '192.168.122.140')],
        },
      },
      gateway: {
        [IP1]: [...gw(IP1, 80, 2049), ...gw(IP1, 80, 2050, '192.168.122.140'), ...gw(IP1, 443, 2051, '192.168.122.140')],
        [IP2]: gw(IP2, 80, 2049),
      },
    },
    {
      title: 'skips target ports and service ports that fall inside the 2049+ range',
      services: [es('a', ['ns1/s1@' + IP1], [2049, 2050])],
      cluster: snapshot([svc('ns1/s1', '10.96.0.11', [2049, 2051])], { 'ns1/s1': ['10.244.0.11'] }, pods),
      forwarder: {
        a: {
          ssh: [`2051:${TARGET}:2049,${IP1}`, `2052:${TARGET}:2050,${IP1}`],
          remote: [`${IP1}:2050:10.96.0.11:2049,${IP1}`, `${IP1}:2052:10.96.0.11:2051,${IP1}`],
          iptables: [...dnat('10.244.9.1', '10.244.0.11', 2049, 2051), ...dnat('10.244.9.1', '10.244.0.11', 2050, 2052)],
        },
      },
      gateway: { [IP1]: [...gw(IP1, 2049, 2050), ...gw(IP1, 2051, 2052)] },
    },
    {
      title: 'writes one DNAT/SNAT pair per source IP, target port, service and ready endpoint',
      services: [es('a', ['ns1/s1@' + IP1, 'ns3/s3@' + IP2], [8000])],
      cluster: snapshot(services, { 'ns1/s1': ['10.244.0.11', '10.244.1.11'], 'ns3/s3': ['10.244.0.13', '10.244.1.13'] }, pods),
      forwarder: {
        a: {
          ssh: [`2049:${TARGET}:8000,${IP1}`, `2050:${TARGET}:8000,${IP2}`],
          remote: [`${IP1}:2049:10.96.0.11:80,${IP1}`, `${IP2}:2049:10.96.0.13:80,${IP2}`, `${IP2}:2050:10.96.0.13:443,${IP2}`],
          iptables: [
            ...dnat('10.244.9.1', '10.244.0.11', 8000, 2049),
            ...dnat('10.244.9.1', '10.244.1.11', 8000, 2049),
            ...dnat('10.244.9.1', '10.244.0.13', 8000, 2050),
            ...dnat('10.244.9.1', '10.244.1.13', 8000, 2050),
          ],
        },
      },
      gateway: { [IP1]: gw(IP1, 80, 2049), [IP2]: [...gw(IP2, 80, 2049), ...gw(IP2, 443, 2050)] },
    },
    {
      title: 'keeps a repeated source IP in allocation (as the original) and writes its gateway rules once',
      services: [es('a', ['ns1/s1@' + IP1, 'ns2/s2@' + IP1], [8000])],
      cluster: snapshot(services, endpoints, pods),
      forwarder: {
        a: {
          ssh: [`2049:${TARGET}:8000,${IP1}`, `2050:${TARGET}:8000,${IP1}`],
          remote: [
            `${IP1}:2049:10.96.0.11:80,${IP1}`,
            `${IP1}:2050:10.96.0.12:80,${IP1}`,
            `${IP1}:2051:10.96.0.11:80,${IP1}`,
            `${IP1}:2052:10.96.0.12:80,${IP1}`,
          ],
          iptables: [...dnat('10.244.9.1', '10.244.0.11', 8000, 2049), ...dnat('10.244.9.1', '10.244.0.12', 8000, 2049)],
        },
      },
      gateway: { [IP1]: [...gw(IP1, 80, 2049), ...gw(IP1, 80, 2050)] },
    },
    {
      title: "lets a later file's service port marking take over a remote port, as the original's dict did",
      services: [es('a', ['ns1/s1@' + IP1], []), es('b', ['ns2/s2@' + IP1], [])],
      cluster: snapshot([svc('ns1/s1', '10.96.0.11', [80]), svc('ns2/s2', '10.96.0.12', [2049, 80])], {}, pods),
      forwarder: {
        a: { ssh: [], remote: [`${IP1}:2049:10.96.0.11:80,${IP1}`], iptables: [] },
        b: { ssh: [], remote: [`${IP1}:2050:10.96.0.12:2049,${IP1}`, `${IP1}:2051:10.96.0.12:80,${IP1}`], iptables: [] },
      },
      gateway: { [IP1]: [...gw(IP1, 80, 2049), ...gw(IP1, 2049, 2050), ...gw(IP1, 80, 2051)] },
    },
    {
      title: 'gives a one-way source (bidirectional: false) no -R tunnel, no gateway rules and no remote port',
      services: [es('a', ['ns1/s1@' + IP1 + '!'], [8000]), es('b', ['ns2/s2@' + IP1], [])],
      cluster: snapshot(services, endpoints, pods),
      forwarder: {
        a: { ssh: [`2049:${TARGET}:8000,${IP1}`], remote: [], iptables: dnat('10.244.9.1', '10.244.0.11', 8000, 2049) },
        b: { ssh: [], remote: [`${IP1}:2049:10.96.0.12:80,${IP1}`], iptables: [] },
      },
      gateway: { [IP1]: gw(IP1, 80, 2049) },
    },
  ])('$title', ({ services: externalServices, cluster, forwarder, gateway }) => {
    const lines = linesOf(generateRules(externalServices, cluster, { forwarderNamespace: NS }).rules);
    expect(lines.forwarder).toEqual(Object.fromEntries(Object.entries(forwarder).map(([name, entry]) => [name, { ssh: [], remote: [], iptables: [], ...entry }])));
    expect(lines.gateway).toEqual(gateway);
  });
});

describe('generateRules with values missing from the cluster', () => {
  const pods = { a: '10.244.9.1' };
  const two = es('a', ['ns1/s1@' + IP1, 'ns2/s2@' + IP1], [8000]);

  it.each<{ title: string; cluster: ClusterSnapshot; remote: string[]; gateway: string[]; iptables: string[]; warning: string | undefined }>([
    {
      title: 'allocates nothing for a missing service, so the next one takes its port',
      cluster: snapshot([svc('ns2/s2', '10.96.0.12', [80])], { 'ns2/s2': ['10.244.0.12'] }, pods),
      remote: [`${IP1}:2049:10.96.0.12:80,${IP1}`, `${IP1}:2050:10.96.0.12:80,${IP1}`],
      gateway: gw(IP1, 80, 2049),
      iptables: dnat('10.244.9.1', '10.244.0.12', 8000, 2049),
      warning: 'a: service ns1/s1 not found: its rules are left out until it exists',
    },
    {
      title: 'allocates for a headless service but writes no line with "None" in it',
      cluster: snapshot([svc('ns1/s1', 'None', [80]), svc('ns2/s2', '10.96.0.12', [80])], { 'ns1/s1': ['10.244.0.11'], 'ns2/s2': ['10.244.0.12'] }, pods),
      remote: [`${IP1}:2050:10.96.0.12:80,${IP1}`, `${IP1}:2052:10.96.0.12:80,${IP1}`],
      gateway: gw(IP1, 80, 2050),
      iptables: [...dnat('10.244.9.1', '10.244.0.11', 8000, 2049), ...dnat('10.244.9.1', '10.244.0.12', 8000, 2049)],
      warning: 'a: service ns1/s1 has no cluster IP to tunnel to (headless): its reverse-path rules are left out',
    },
    {
      title: 'allocates for an ExternalName service but writes no line for it',
      cluster: snapshot([svc('ns1/s1', undefined, [80], 'ExternalName'), svc('ns2/s2', '10.96.0.12', [80])], { 'ns2/s2': ['10.244.0.12'] }, pods),
      remote: [`${IP1}:2050:10.96.0.12:80,${IP1}`, `${IP1}:2052:10.96.0.12:80,${IP1}`],
      gateway: gw(IP1, 80, 2050),
      iptables: dnat('10.244.9.1', '10.244.0.12', 8000, 2049),
      warning: 'a: service ns1/s1 has no cluster IP to tunnel to (an ExternalName service): its reverse-path rules are left out',
    },
    {
      title: 'writes no iptables rule while the forwarder pod has no IP, and keeps the tunnels',
      cluster: snapshot([svc('ns1/s1', '10.96.0.11', [80]), svc('ns2/s2', '10.96.0.12', [80])], { 'ns1/s1': ['10.244.0.11'] }, { a: undefined }),
      remote: [`${IP1}:2049:10.96.0.11:80,${IP1}`, `${IP1}:2050:10.96.0.12:80,${IP1}`, `${IP1}:2051:10.96.0.11:80,${IP1}`, `${IP1}:2052:10.96.0.12:80,${IP1}`],
      gateway: [...gw(IP1, 80, 2049), ...gw(IP1, 80, 2050)],
      iptables: [],
      warning: 'a: forwarder pod external-services/a has no IP yet: its iptables rules are left out',
    },
    {
      title: 'writes no iptables rule for an endpoint that is not a unicast address (the readers would reject the whole document)',
      cluster: snapshot([svc('ns1/s1', '10.96.0.11', [80]), svc('ns2/s2', '10.96.0.12', [80])], { 'ns1/s1': ['127.0.0.1'], 'ns2/s2': ['10.244.0.12'] }, pods),
      remote: [`${IP1}:2049:10.96.0.11:80,${IP1}`, `${IP1}:2050:10.96.0.12:80,${IP1}`, `${IP1}:2051:10.96.0.11:80,${IP1}`, `${IP1}:2052:10.96.0.12:80,${IP1}`],
      gateway: [...gw(IP1, 80, 2049), ...gw(IP1, 80, 2050)],
      iptables: dnat('10.244.9.1', '10.244.0.12', 8000, 2049),
      warning: 'a: service ns1/s1: endpoint "127.0.0.1" is a loopback address (127.0.0.0/8): its rules are left out',
    },
    {
      title: 'writes no iptables rule for a forwarder pod whose IP is not a unicast address',
      cluster: snapshot([svc('ns1/s1', '10.96.0.11', [80]), svc('ns2/s2', '10.96.0.12', [80])], { 'ns1/s1': ['10.244.0.11'] }, { a: '0.0.0.0' }),
      remote: [`${IP1}:2049:10.96.0.11:80,${IP1}`, `${IP1}:2050:10.96.0.12:80,${IP1}`, `${IP1}:2051:10.96.0.11:80,${IP1}`, `${IP1}:2052:10.96.0.12:80,${IP1}`],
      gateway: [...gw(IP1, 80, 2049), ...gw(IP1, 80, 2050)],
      iptables: [],
      warning: 'a: forwarder pod external-services/a has IP "0.0.0.0", which is unspecified (0.0.0.0/8): its iptables rules are left out',
    },
    {
      title: 'writes no reverse-path line for a service whose cluster IP is not a unicast address',
      cluster: snapshot([svc('ns1/s1', '255.255.255.255', [80]), svc('ns2/s2', '10.96.0.12', [80])], { 'ns2/s2': ['10.244.0.12'] }, pods),
      remote: [`${IP1}:2050:10.96.0.12:80,${IP1}`, `${IP1}:2052:10.96.0.12:80,${IP1}`],
      gateway: gw(IP1, 80, 2050),
      iptables: dnat('10.244.9.1', '10.244.0.12', 8000, 2049),
      warning: 'a: service ns1/s1 has no cluster IP to tunnel to (cluster IP "255.255.255.255" is the broadcast address): its reverse-path rules are left out',
    },
    {
      title: 'writes no iptables rule while the forwarder pod does not exist',
      cluster: snapshot([svc('ns1/s1', '10.96.0.11', [80]), svc('ns2/s2', '10.96.0.12', [80])], { 'ns1/s1': ['10.244.0.11'] }),
      remote: [`${IP1}:2049:10.96.0.11:80,${IP1}`, `${IP1}:2050:10.96.0.12:80,${IP1}`, `${IP1}:2051:10.96.0.11:80,${IP1}`, `${IP1}:2052:10.96.0.12:80,${IP1}`],
      gateway: [...gw(IP1, 80, 2049), ...gw(IP1, 80, 2050)],
      iptables: [],
      warning: 'a: forwarder pod external-services/a does not exist yet: its iptables rules are left out',
    },
  ])('$title', ({ cluster, remote, gateway, iptables, warning }) => {
    const { rules, warnings } = generateRules([two], cluster, { forwarderNamespace: NS });
    const lines = linesOf(rules);
    expect(lines.forwarder.a).toEqual({ ssh: [`2049:${TARGET}:8000,${IP1}`, `2050:${TARGET}:8000,${IP1}`], remote, iptables });
    expect(lines.gateway).toEqual({ [IP1]: gateway });
    expect(warnings).toContain(warning);
    expect(serializeRules(rules)).not.toMatch(/None|<none>|undefined/);
  });

  it('uses ready endpoint addresses only, from every EndpointSlice of the service (not-ready endpoints are not sources)', () => {
    const slice = (name: string, endpoints: unknown[]): unknown => ({ metadata: { name, namespace: 'ns1', labels: { 'kubernetes.io/service-name': 's1' } }, endpoints });
    const cluster = snapshotFromObjects({
      pods: [{ metadata: { name: 'a', namespace: NS }, status: { podIP: '10.244.9.1' } }],
      services: [{ metadata: { name: 's1', namespace: 'ns1' }, spec: { clusterIP: '10.96.0.11', ports: [{ port: 80 }] } }],
      endpointSlices: [
        slice('s1-x', [{ addresses: ['10.244.0.11'], conditions: { ready: true } }, { addresses: ['10.244.0.99'], conditions: { ready: false } }]),
        slice('s1-y', [{ addresses: ['10.244.0.12'] }]),
      ],
    });
    const lines = linesOf(generateRules([es('a', ['ns1/s1@' + IP1], [8000])], cluster, { forwarderNamespace: NS }).rules);
    expect(lines.forwarder.a?.iptables).toEqual([...dnat('10.244.9.1', '10.244.0.11', 8000, 2049), ...dnat('10.244.9.1', '10.244.0.12', 8000, 2049)]);
  });

  it('prints empty mappings when there is no ExternalService', () => {
    expect(serializeRules(generateRules([], snapshot([]), { forwarderNamespace: NS }).rules)).toBe('"forwarder": {}\n"gateway": {}\n');
  });

  it('prints an empty block as "" for an ExternalService without sources or ports', () => {
    expect(serializeRules(generateRules([es('lonely', [], [])], snapshot([]), { forwarderNamespace: NS }).rules)).toBe(
      '"forwarder":\n  "lonely":\n    "iptables-rule": ""\n    "remote-ssh-tunnel": ""\n    "ssh-tunnel": ""\n"gateway": {}\n',
    );
  });
});

describe('generateRules with inputs too large for the rules document', () => {
  const pods = { a: '10.244.9.1', b: '10.244.9.2' };
  const manyPorts = (count: number): number[] => Array.from({ length: count }, (_, index) => index + 1);

  it('leaves out an ExternalService whose service has more ports than a block may hold, naming its file, and keeps the others', () => {
    const cluster = snapshot([svc('ns1/big', '10.96.0.11', manyPorts(20_000)), svc('ns2/s2', '10.96.0.12', [80])], { 'ns2/s2': ['10.244.0.12'] }, pods);
    const big = { ...es('a', ['ns1/big@' + IP1], [8000]), file: 'conf/a.yaml' };
    const { rules, errors } = generateRules([big, es('b', ['ns2/s2@' + IP1], [8000])], cluster, { forwarderNamespace: NS });
    expect(errors.map((error) => error.message)).toEqual([
      'conf/a.yaml: a: its rules are left out: its remote-ssh-tunnel block would be 20000 lines (one per port of each source\'s service; service ns1/big has 20000 ports), more than the 8192 a block may hold',
    ]);
    expect(Object.keys(rules.forwarder)).toEqual(['b']);
    // The left-out ExternalService took no port: b gets the first ones.
    expect(linesOf(rules).forwarder.b?.remote).toEqual([`${IP1}:2049:10.96.0.12:80,${IP1}`]);
    expect(() => parseRules(serializeRules(rules), 'rules.yaml')).not.toThrow();
  });

  it('leaves out the ExternalService that would push a gateway block over the limit', () => {
    const cluster = snapshot([svc('ns1/s1', '10.96.0.11', manyPorts(3000)), svc('ns2/s2', '10.96.0.12', manyPorts(3000))], {}, pods);
    const { rules, errors } = generateRules([es('a', ['ns1/s1@' + IP1], []), es('b', ['ns2/s2@' + IP1], [])], cluster, { forwarderNamespace: NS });
    expect(errors.map((error) => error.message)).toEqual([
      `ExternalService b: b: its rules are left out: its block of gateway ${IP1} would be 12000 lines (its reverse-path rules added to those of the ExternalServices before it), more than the 8192 a block may hold`,
    ]);
    expect(blockLines(rules.gateway[IP1]?.['iptables-rule'])).toHaveLength(6000);
  });

  it('warns when the remote ports of a source IP run out, instead of dropping the reverse tunnels silently', () => {
    // Headless services write no rules but take remote ports, as in the original: sixteen of them
    // with 4,000 ports each use up 2049..65535 on IP1, and z's service finds no port left.
    const headless = Array.from({ length: 16 }, (_, index) => svc(`ns/h${index}`, 'None', manyPorts(4000)));
    const cluster = snapshot([...headless, svc('ns2/s2', '10.96.0.12', [80])], {}, pods);
    const services = [...headless.map((service) => es(service.name, [`ns/${service.name}@${IP1}`], [])), es('z', ['ns2/s2@' + IP1], [])];
    const { rules, warnings, errors } = generateRules(services, cluster, { forwarderNamespace: NS });
    expect(errors).toEqual([]);
    expect(warnings).toContain(`z: no remote port left on ${IP1} (2049..65535 all taken by services and tunnels): 1 reverse tunnel(s) left out`);
    expect(rules.forwarder.z?.['remote-ssh-tunnel']).toBe('');

  });
});
