import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateRules } from '../../../controller/genrule.js';
import { parseSnapshot } from '../../../controller/snapshot.js';
import { desiredFromSources } from '../../../forwarder/desired.js';
import { tunnelArgv } from '../../../forwarder/tunnel.js';
import { desiredNat, desiredPermits } from '../../../gateway/plan.js';
import { readRulesFile } from '../../../gateway/rules-file.js';
import { permitsByHost, permitsFor, permitsInConfig } from '../../../gateway/sshd-config.js';
import { parseIpsConf } from '../../../gateway/ipsconf.js';
import { ConfigError } from '../../../lib/errors.js';
import { parseExternalService } from '../../../lib/externalservice.js';
import { natRestoreInput } from '../../../lib/iptables.js';
import { unicastIPv4Problem } from '../../../lib/ipv4.js';
import { blockLines, natRules, parseRules, parseTunnelLine, serializeRules, toBlock, type ForwarderEntry, type RulesDocument } from '../../../lib/rules.js';

/**
 * Generated conf files, snapshots, ips.conf files and rules documents thrown at the parsers and
 * planners. Invariants: nothing but a ConfigError escapes a parser; whatever is accepted reaches
 * iptables only as the nat table and ssh only with values that cannot be read as options; what
 * genrule writes is always accepted by the readers.
 */

const RUNS = { numRuns: 200 };

/** Words a hostile line might carry, beside well-formed ones. */
const hostileWord = fc.constantFrom(
  '-t', 'filter', '--table=filter', '-tfilter', '--tab', '-F', '-P', 'DROP', '--modprobe=/tmp/x', '-M', '../../x', '-m', 'tcp', '-j', 'ACCEPT',
  '-Jevil.example', '-v', '-oProxyJump@host', '0', '70000', '0.0.0.0', '255.255.255.255', '127.0.0.1', '224.0.0.1', '*a', '&a', '{}', ':', ',',
);
const octet = fc.integer({ min: 0, max: 255 });
const ip = fc.tuple(octet, octet, octet, octet).map((parts) => parts.join('.'));
const port = fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: -1, max: 70000 }));
const ruleLine = fc.oneof(
  fc.tuple(ip, ip, port, ip, port).map(([dst, src, dport, to, toPort]) => `PREROUTING -t nat -m tcp -p tcp --dst ${dst} --src ${src} --dport ${dport} -j DNAT --to-destination ${to}:${toPort}`),
  fc.tuple(ip, port, ip).map(([dst, dport, to]) => `POSTROUTING -t nat -m tcp -p tcp --dst ${dst} --dport ${dport} -j SNAT --to-source ${to}`),
  fc.array(fc.oneof(hostileWord, fc.string({ maxLength: 12 })), { maxLength: 14 }).map((words) => words.join(' ')),
);
const tunnelLine = fc.oneof(
  fc.tuple(port, ip, port, fc.oneof(ip, hostileWord)).map(([local, host, remote, ssh]) => `${local}:${host}:${remote},${ssh}`),
  fc.tuple(ip, port, ip, port, fc.oneof(ip, hostileWord)).map(([bind, local, host, remote, ssh]) => `${bind}:${local}:${host}:${remote},${ssh}`),
  fc.string({ maxLength: 40 }),
);
const block = (line: fc.Arbitrary<string>): fc.Arbitrary<string> => fc.array(line, { maxLength: 4 }).map((lines) => (lines.length === 0 ? '""' : `|\n${lines.map((text) => `      ${text.replace(/\n/g, ' ')}`).join('\n')}`));
/** Addresses and ports the readers accept, to reach their accepting side often. */
const unicast = fc.tuple(fc.integer({ min: 1, max: 126 }), octet, octet, fc.integer({ min: 1, max: 254 })).map((parts) => parts.join('.'));
const goodPort = fc.integer({ min: 1, max: 65535 });
/** Mostly values the readers accept, sometimes any value of the wider kind. */
const mostlyValid = <T,>(good: fc.Arbitrary<T>, any: fc.Arbitrary<T>): fc.Arbitrary<T> => fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: any, weight: 1 });
const mostlyGood = (good: fc.Arbitrary<string>): fc.Arbitrary<string> => fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: tunnelLine, weight: 1 });
/** The README's document with one generated tunnel line added to each tunnel block. */
const readmeDocument = fc
  .tuple(
    mostlyGood(fc.tuple(goodPort, unicast, goodPort, unicast).map(([local, host, remote, ssh]) => `${local}:${host}:${remote},${ssh}`)),
    mostlyGood(fc.tuple(unicast, goodPort, unicast, goodPort, unicast).map(([bind, local, host, remote, ssh]) => `${bind}:${local}:${host}:${remote},${ssh}`)),
  )
  .map(
    ([local, remote]) => `"forwarder":
  "my-external-service1":
    "iptables-rule": |
      PREROUTING -t nat -m tcp -p tcp --dst 10.244.0.50 --src 10.244.0.11 --dport 8000 -j DNAT --to-destination 10.244.0.50:2049
      POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2049 -j SNAT --to-source 10.244.0.50
    "remote-ssh-tunnel": |
      192.168.122.200:2049:10.96.0.11:80,192.168.122.200
      ${remote.replace(/\n/g, ' ')}
    "ssh-tunnel": |
      2049:192.168.122.139:8000,192.168.122.200
      ${local.replace(/\n/g, ' ')}
"gateway":
  "192.168.122.200":
    "iptables-rule": |
      PREROUTING -t nat -m tcp -p tcp --dst 192.168.122.200 --src 192.168.122.139 --dport 80 -j DNAT --to-destination 192.168.122.200:2049
      POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2049 -j SNAT --to-source 192.168.122.200
`,
  );
const rulesDocument = fc.oneof(
  readmeDocument,
  fc
    .tuple(fc.constantFrom('es1', '-x', 'a b'), block(ruleLine), block(tunnelLine), block(tunnelLine), fc.oneof(ip, hostileWord), block(ruleLine))
    .map(
      ([name, rules, remote, local, gatewayIP, gatewayRules]) =>
        `"forwarder":\n  "${name}":\n    "iptables-rule": ${rules}\n    "remote-ssh-tunnel": ${remote}\n    "ssh-tunnel": ${local}\n"gateway":\n  "${gatewayIP}":\n    "iptables-rule": ${gatewayRules}\n`,
    ),
  fc.constantFrom('{}', '"gateway":', '"forwarder":\n"gateway":\n', '', 'a: &a [*a]', '"forwarder": {}\n"gateway": []\n'),
  fc.string({ maxLength: 200 }),
);

/** Parses, and returns undefined for a ConfigError (a named input error): any other exception fails the property. */
function accepted<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
}

/** What the readers would hand iptables-restore and ssh for an accepted document. */
function checkReachesOnlyNatAndSafeArgv(document: RulesDocument): void {
  const entries = [...Object.values(document.forwarder), ...Object.values(document.gateway)];
  for (const entry of entries) {
    const input = natRestoreInput(natRules(entry['iptables-rule']));
    expect(input.split('\n').filter((line) => line.startsWith('*'))).toEqual(['*nat']);
    for (const line of input.split('\n').filter((text) => text.startsWith('-A '))) {
      expect(line).toMatch(/^-A (PREROUTING|POSTROUTING) -m tcp -p tcp /);
      expect(line).not.toMatch(/--modprobe|(^| )-[tFPMXZNE]( |$)|--table/);
    }
  }
  for (const entry of Object.values(document.forwarder)) {
    for (const kind of ['ssh-tunnel', 'remote-ssh-tunnel'] as const) {
      for (const line of blockLines(entry[kind])) {
        const { spec, host } = parseTunnelLine(line, kind);
        const argv = tunnelArgv({ kind: kind === 'ssh-tunnel' ? 'local' : 'remote', spec, host }, { key: '/key', options: [] });
        const separator = argv.indexOf('--');
        expect(argv[separator - 1]).toBe(spec);
        for (const value of [spec, argv[separator + 1] ?? '']) expect(value.startsWith('-'), value).toBe(false);
      }
    }
  }
}

describe('properties', () => {
  it('a rules document is either rejected with a ConfigError or reaches only the nat table and ssh values that are not options', () => {
    let acceptedDocuments = 0;
    fc.assert(
      fc.property(rulesDocument, (text) => {
        const document = accepted(() => parseRules(text, 'rules.yaml'));
        if (document === undefined) return;
        acceptedDocuments++;
        checkReachesOnlyNatAndSafeArgv(document);
      }),
      RUNS,
    );
    // The generators must reach the readers' accepting side too, or the property says nothing.
    expect(acceptedDocuments).toBeGreaterThan(0);
  });

  it('a rejected rules document changes nothing applied: the gateway plans no nat rules and keeps the permits its sshd has, the forwarder stops before planning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'k8s-ext-properties-'));
    const file = join(dir, 'rules.yaml');
    // The config of an sshd that runs with the permits of earlier, valid rules.
    const runningConfig = 'PermitOpen 192.168.122.139:8000\nPermitListen 192.168.122.200:2049\n';
    let rejected = 0;
    try {
      fc.assert(
        fc.property(rulesDocument, (text) => {
          writeFileSync(file, text);
          const state = readRulesFile(file);
          if (state.kind !== 'invalid') return;
          rejected++;
          expect(desiredNat(state, '192.168.122.200')).toBeUndefined();
          expect(desiredPermits(state, '192.168.122.200', runningConfig)).toEqual(permitsInConfig(runningConfig));
          expect(() =>
            desiredFromSources({ dataFile: file, name: 'my-external-service1', sshUser: undefined, rulesConfigMap: undefined }, undefined, {}),
          ).toThrow(ConfigError);
        }),
        RUNS,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(rejected).toBeGreaterThan(0);
  });

  it("every IP's sshd permits from one pass over the tunnel lines (permitsByHost; the plan's desiredPermits) are those permitsFor reads for that IP alone", () => {
    // Few hosts and targets, so that IPs share documents, forwarders and targets, and lines repeat.
    const gatewayIPs = ['192.168.122.20', '192.168.122.21', '192.168.122.22', '10.0.0.1'];
    const sshHost = fc.tuple(fc.constantFrom('', 'tunnel@', 'root@'), fc.constantFrom(...gatewayIPs, 'gw.example')).map(([user, host]) => `${user}${host}`);
    const target = fc.tuple(fc.constantFrom('192.168.122.139', '10.96.0.11', 'db.example'), fc.constantFrom(80, 8000, 8443));
    const localLine = fc.tuple(goodPort, target, sshHost).map(([local, [host, remote], ssh]) => `${local}:${host}:${remote},${ssh}`);
    const remoteLine = fc
      .tuple(fc.constantFrom(...gatewayIPs), fc.integer({ min: 2049, max: 2052 }), unicast, goodPort, sshHost)
      .map(([bind, local, host, remote, ssh]) => `${bind}:${local}:${host}:${remote},${ssh}`);
    const entry = fc.record({
      'iptables-rule': fc.constant(''),
      'remote-ssh-tunnel': fc.array(remoteLine, { maxLength: 6 }).map(toBlock),
      'ssh-tunnel': fc.array(localLine, { maxLength: 6 }).map(toBlock),
    });
    const documents = fc.array(entry, { maxLength: 6 }).map((entries): RulesDocument => ({
      forwarder: Object.fromEntries(entries.map((value, index): [string, ForwarderEntry] => [`es-${index}`, value])),
      gateway: {},
    }));
    let sharedDocuments = 0;
    fc.assert(
      fc.property(documents, (generated) => {
        // As the gateway gets it: written and read back.
        const document = parseRules(serializeRules(generated), 'rules.yaml');
        const byHost = permitsByHost(document);
        const named = new Set(
          Object.values(document.forwarder).flatMap((value) =>
            [...blockLines(value['ssh-tunnel']), ...blockLines(value['remote-ssh-tunnel'])].map((line) => line.slice(line.lastIndexOf(',') + 1).replace(/^.*@/, '')),
          ),
        );
        expect([...byHost.keys()].sort()).toEqual([...named].sort());
        if (named.size > 1) sharedDocuments++;
        for (const host of [...gatewayIPs, 'gw.example', '192.168.122.99']) {
          const alone = permitsFor(document, host);
          expect(byHost.get(host) ?? { open: [], listen: [] }).toEqual(alone);
          expect(desiredPermits({ kind: 'ok', rules: document }, host, undefined)).toEqual(alone);
        }
      }),
      RUNS,
    );
    expect(sharedDocuments).toBeGreaterThan(0);
  });

  it('an ips.conf is either rejected with a ConfigError or lists only unicast IPv4 addresses', () => {
    const line = fc.oneof(ip, hostileWord, fc.string({ maxLength: 20 }), fc.constant('# comment'), fc.constant(''));
    let acceptedFiles = 0;
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), (lines) => {
        const ips = accepted(() => parseIpsConf(lines.join('\n'), 'ips.conf'));
        if (ips !== undefined) acceptedFiles++;
        for (const address of ips ?? []) expect(unicastIPv4Problem(address)).toBeUndefined();
      }),
      RUNS,
    );
    expect(acceptedFiles).toBeGreaterThan(0);
  });

  it('a conf file never throws: a service, or errors naming the file', () => {
    const value = fc.oneof(ip, hostileWord, port.map(String), fc.string({ maxLength: 10 }), fc.constant('[]'), fc.constant('{}'), fc.constant('null'));
    const conf = fc
      .tuple(fc.constantFrom('es1', 'Bad_Name', '-x', '""'), value, value, value, port, fc.oneof(port.map(String), value), fc.boolean())
      .map(
        ([name, targetIP, sourceIP, service, portValue, targetPort, bidirectional]) =>
          `kind: ExternalService\nmetadata: {name: ${name}}\nspec:\n  targetIP: ${targetIP}\n  sources:\n    - service: {namespace: ns1, name: ${service}}\n      sourceIP: ${sourceIP}\n      bidirectional: ${bidirectional}\n  ports:\n    - {port: ${portValue}, targetPort: ${targetPort}}\n`,
      );
    fc.assert(
      fc.property(fc.oneof(conf, fc.string({ maxLength: 300 })), (text) => {
        const parsed = parseExternalService(text, 'conf/a.yaml');
        expect(parsed.service === undefined).toBe(parsed.errors.length > 0);
        for (const error of parsed.errors) expect(error.message.startsWith('conf/a.yaml: ')).toBe(true);
      }),
      RUNS,
    );
  });

  it('whatever genrule writes for a valid conf and any accepted snapshot, the readers accept, and it touches only nat', () => {
    // The snapshot's own layout (what `genrule --save-snapshot` writes): pods, services and the
    // ready addresses of each service.
    const pod = fc.record({ namespace: fc.constantFrom('external-services', 'ns1'), name: fc.constantFrom('es1', 'x'), podIP: mostlyValid(unicast, fc.oneof(ip, hostileWord)) });
    const service = fc.record({
      namespace: fc.constant('ns1'),
      name: fc.constantFrom('my-service1', 'other'),
      type: fc.constantFrom('ClusterIP', 'ExternalName'),
      clusterIP: mostlyValid(unicast, fc.oneof(ip, hostileWord)),
      ports: fc.array(fc.record({ protocol: fc.constant('TCP'), port: mostlyValid(goodPort, port) }), { maxLength: 3 }),
    });
    const endpoints = fc.record({ namespace: fc.constant('ns1'), name: fc.constantFrom('my-service1', 'other'), readyIPs: fc.array(mostlyValid(unicast, fc.oneof(ip, hostileWord)), { maxLength: 3 }) });
    // Weighted towards what the readers accept: otherwise nearly every generated snapshot or conf
    // file is rejected, and a run could end with no rules generated at all.
    const snapshotText = fc.oneof(
      {
        arbitrary: fc.tuple(fc.array(pod, { maxLength: 3 }), fc.array(service, { maxLength: 3 }), fc.array(endpoints, { maxLength: 2 })).map(([pods, services, ready]) =>
          JSON.stringify({ version: 1, pods, services, endpoints: ready }),
        ),
        weight: 6,
      },
      { arbitrary: fc.string({ maxLength: 100 }), weight: 1 },
      { arbitrary: fc.json(), weight: 1 },
    );
    const conf = fc.tuple(mostlyValid(unicast, ip), mostlyValid(unicast, ip), mostlyValid(goodPort, port)).map(
      ([targetIP, sourceIP, servicePort]) =>
        `kind: ExternalService\nmetadata: {name: es1}\nspec:\n  targetIP: ${targetIP}\n  sources:\n    - service: {namespace: ns1, name: my-service1}\n      sourceIP: ${sourceIP}\n  ports:\n    - {port: ${servicePort}}\n`,
    );
    let generatedDocuments = 0;
    fc.assert(
      fc.property(conf, snapshotText, (confText, text) => {
        const snapshot = accepted(() => parseSnapshot(text, 'snap.json'));
        const parsed = parseExternalService(confText, 'conf/a.yaml');
        if (snapshot === undefined || parsed.service === undefined) return;
        const generated = generateRules([parsed.service], snapshot, { forwarderNamespace: 'external-services' });
        const document = parseRules(serializeRules(generated.rules), 'rules.yaml');
        if (Object.values(document.forwarder).some((entry) => entry['iptables-rule'] !== '')) generatedDocuments++;
        checkReachesOnlyNatAndSafeArgv(document);
      }),
      RUNS,
    );
    expect(generatedDocuments).toBeGreaterThan(0);
  });
});
