import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listConfFiles, loadExternalServices, parseExternalService } from '../../../lib/externalservice.js';
import { tempDir } from '../../helpers/cli.js';
import { aliasBomb } from '../../helpers/hostile.js';

const FILE = 'conf/a.yaml';

function conf(spec: string, metadata = 'metadata:\n  name: es1\n', kind = 'kind: ExternalService\n'): string {
  return `apiVersion: externalservice.example.com/v1alpha1\n${kind}${metadata}spec:\n${spec}`;
}

const VALID_SPEC = `  targetIP: 192.168.122.139
  sources:
    - service: {namespace: ns1, name: my-service1}
      sourceIP: 192.168.122.200
  ports:
    - {protocol: TCP, port: 8000, targetPort: 8000}
`;

function messages(text: string): string[] {
  return parseExternalService(text, FILE).errors.map((error) => error.message);
}

describe('parseExternalService', () => {
  it('reads the README sample into name, targetIP, sources and ports', () => {
    const parsed = parseExternalService(conf(VALID_SPEC), FILE);
    expect(parsed.errors).toEqual([]);
    expect(parsed.service).toEqual({
      file: FILE,
      name: 'es1',
      targetIP: '192.168.122.139',
      sources: [{ service: { namespace: 'ns1', name: 'my-service1' }, sourceIP: '192.168.122.200', bidirectional: true }],
      ports: [{ protocol: 'TCP', port: 8000, targetPort: 8000 }],
    });
  });

  it('defaults protocol to TCP and targetPort to port, and reads digit strings as numbers', () => {
    const parsed = parseExternalService(conf('  targetIP: 10.0.0.1\n  ports:\n    - {port: "8000"}\n    - {port: 9000, targetPort: "9001", name: web}\n'), FILE);
    expect(parsed.service?.ports).toEqual([
      { protocol: 'TCP', port: 8000, targetPort: 8000 },
      { protocol: 'TCP', port: 9000, targetPort: 9001, name: 'web' },
    ]);
  });

  it('accepts empty or absent sources and ports (no ports means reverse path only)', () => {
    expect(parseExternalService(conf('  targetIP: 10.0.0.1\n'), FILE).service).toMatchObject({ sources: [], ports: [] });
    expect(parseExternalService(conf('  targetIP: 10.0.0.1\n  sources: []\n  ports: []\n'), FILE).service).toMatchObject({ sources: [], ports: [] });
  });

  it('reads bidirectional: false on a source', () => {
    const parsed = parseExternalService(conf('  targetIP: 10.0.0.1\n  sources:\n    - {service: {namespace: a, name: b}, sourceIP: 10.0.0.2, bidirectional: false}\n'), FILE);
    expect(parsed.service?.sources[0]?.bidirectional).toBe(false);
  });

  it('skips a source without service or without sourceIP with a warning, keeping the others', () => {
    const parsed = parseExternalService(
      conf(`  targetIP: 10.0.0.1
  sources:
    - sourceIP: 10.0.0.2
    - service: {namespace: a, name: b}
    - service: {namespace: a, name: c}
      sourceIP: 10.0.0.3
`),
      FILE,
    );
    expect(parsed.errors).toEqual([]);
    expect(parsed.service?.sources.map((source) => source.service.name)).toEqual(['c']);
    expect(parsed.warnings).toEqual([
      'conf/a.yaml: spec.sources[0]: skipped: it has no service',
      'conf/a.yaml: spec.sources[1]: skipped: it has no sourceIP',
    ]);
  });

  it.each([
    ['an empty file', '', 'conf/a.yaml: file is empty'],
    ['a file of only comments', '# nothing\n', 'conf/a.yaml: file is empty'],
    ['invalid YAML', 'kind: [ExternalService\n', 'conf/a.yaml: invalid YAML'],
    ['a YAML list', '- a\n- b\n', 'conf/a.yaml: must be a mapping (an ExternalService object)'],
    ['a wrong kind', conf(VALID_SPEC, undefined, 'kind: Service\n'), 'conf/a.yaml: kind: "Service" is not ExternalService'],
    ['a missing kind', conf(VALID_SPEC, undefined, ''), 'conf/a.yaml: kind: is missing (must be ExternalService)'],
    ['missing metadata', conf(VALID_SPEC, ''), 'conf/a.yaml: metadata: is missing'],
    ['missing metadata.name', conf(VALID_SPEC, 'metadata: {}\n'), 'conf/a.yaml: metadata.name: is missing'],
    ['an upper-case name', conf(VALID_SPEC, 'metadata: {name: My-Service}\n'), 'conf/a.yaml: metadata.name: "My-Service" is not a DNS-1035 label'],
    ['a name starting with a digit', conf(VALID_SPEC, 'metadata: {name: 1abc}\n'), 'conf/a.yaml: metadata.name: "1abc" is not a DNS-1035 label'],
    ['a name of 64 characters', conf(VALID_SPEC, `metadata: {name: a${'b'.repeat(63)}}\n`), 'is not a DNS-1035 label'],
    ['a name with shell text', conf(VALID_SPEC, 'metadata: {name: "a$(reboot) b"}\n'), 'conf/a.yaml: metadata.name: "a$(reboot) b" is not a DNS-1035 label'],
    ['missing spec', 'kind: ExternalService\nmetadata: {name: a}\n', 'conf/a.yaml: spec: is missing'],
    ['missing spec.targetIP', conf('  ports: []\n'), 'conf/a.yaml: spec.targetIP: is missing'],
    ['a bad targetIP', conf('  targetIP: 192.168.1\n'), 'conf/a.yaml: spec.targetIP: "192.168.1" is not an IPv4 address'],
    ['an unspecified targetIP', conf('  targetIP: 0.0.0.0\n'), 'conf/a.yaml: spec.targetIP: "0.0.0.0" is unspecified (0.0.0.0/8)'],
    ['a broadcast targetIP', conf('  targetIP: 255.255.255.255\n'), 'conf/a.yaml: spec.targetIP: "255.255.255.255" is the broadcast address'],
    ['a loopback targetIP', conf('  targetIP: 127.0.0.1\n'), 'conf/a.yaml: spec.targetIP: "127.0.0.1" is a loopback address (127.0.0.0/8)'],
    [
      'a sourceIP that no gateway can own',
      conf('  targetIP: 10.0.0.1\n  sources:\n    - {service: {namespace: a, name: b}, sourceIP: 0.0.0.0}\n    - {service: {namespace: a, name: b}, sourceIP: 224.0.0.1}\n'),
      'conf/a.yaml: spec.sources[0].sourceIP: "0.0.0.0" is unspecified (0.0.0.0/8)',
    ],
    [
      'a bad sourceIP',
      conf('  targetIP: 10.0.0.1\n  sources:\n    - {service: {namespace: a, name: b}, sourceIP: 10.0.0.2}\n    - {service: {namespace: a, name: b}, sourceIP: 300.1.1.1}\n'),
      'conf/a.yaml: spec.sources[1].sourceIP: "300.1.1.1" is not an IPv4 address',
    ],
    ['sources that are not a list', conf('  targetIP: 10.0.0.1\n  sources: {a: b}\n'), 'conf/a.yaml: spec.sources: must be a list'],
    ['a source that is not a mapping', conf('  targetIP: 10.0.0.1\n  sources: [x]\n'), 'conf/a.yaml: spec.sources[0]: must be a mapping'],
    ['a service without namespace', conf('  targetIP: 10.0.0.1\n  sources:\n    - {service: {name: b}, sourceIP: 10.0.0.2}\n'), 'conf/a.yaml: spec.sources[0].service.namespace: is missing'],
    ['a service without name', conf('  targetIP: 10.0.0.1\n  sources:\n    - {service: {namespace: a}, sourceIP: 10.0.0.2}\n'), 'conf/a.yaml: spec.sources[0].service.name: is missing'],
    ['a bad service namespace', conf('  targetIP: 10.0.0.1\n  sources:\n    - {service: {namespace: A_B, name: b}, sourceIP: 10.0.0.2}\n'), 'spec.sources[0].service.namespace: "A_B" is not a namespace name'],
    ['a non-boolean bidirectional', conf('  targetIP: 10.0.0.1\n  sources:\n    - {service: {namespace: a, name: b}, sourceIP: 10.0.0.2, bidirectional: "no"}\n'), 'spec.sources[0].bidirectional: "no" is not true or false'],
    ['ports that are not a list', conf('  targetIP: 10.0.0.1\n  ports: 8000\n'), 'conf/a.yaml: spec.ports: must be a list'],
    ['port 0', conf('  targetIP: 10.0.0.1\n  ports:\n    - {port: 0, targetPort: 80}\n'), 'conf/a.yaml: spec.ports[0].port: 0 is not a port number (1..65535)'],
    ['port 65536', conf('  targetIP: 10.0.0.1\n  ports:\n    - {port: 65536}\n'), 'conf/a.yaml: spec.ports[0].port: 65536 is not a port number (1..65535)'],
    ['a targetPort out of range', conf('  targetIP: 10.0.0.1\n  ports:\n    - {port: 80, targetPort: 70000}\n'), 'conf/a.yaml: spec.ports[0].targetPort: 70000 is not a port number (1..65535)'],
    ['a named targetPort', conf('  targetIP: 10.0.0.1\n  ports:\n    - {port: 80, targetPort: http}\n'), 'conf/a.yaml: spec.ports[0].targetPort: "http" is not a port number (1..65535)'],
    ['a missing port', conf('  targetIP: 10.0.0.1\n  ports:\n    - {targetPort: 80}\n'), 'conf/a.yaml: spec.ports[0].port: is missing'],
    ['an unsupported protocol', conf('  targetIP: 10.0.0.1\n  ports:\n    - {protocol: UDP, port: 53}\n'), 'conf/a.yaml: spec.ports[0].protocol: "UDP" is not supported (only TCP)'],
    ['a duplicate port', conf('  targetIP: 10.0.0.1\n  ports:\n    - {port: 80}\n    - {port: 80, targetPort: 81}\n'), 'conf/a.yaml: spec.ports[1].port: 80 is also the port of spec.ports[0]'],
    ['a bad port name', conf('  targetIP: 10.0.0.1\n  ports:\n    - {port: 80, name: Web_1}\n'), 'conf/a.yaml: spec.ports[0].name: "Web_1" is not a port name'],
  ])('rejects %s, naming the file and field', (_case, text, message) => {
    const parsed = parseExternalService(text, FILE);
    expect(parsed.service).toBeUndefined();
    expect(parsed.errors.map((error) => error.message).join('\n')).toContain(message);
    expect(parsed.errors.every((error) => error.file === FILE)).toBe(true);
  });

  it('reports every problem of a file, not only the first', () => {
    const text = conf('  targetIP: nope\n  sources:\n    - {service: {namespace: a, name: b}, sourceIP: 1.2.3}\n  ports:\n    - {protocol: SCTP, port: 99999}\n', 'metadata: {name: Bad}\n');
    expect(messages(text)).toEqual([
      'conf/a.yaml: metadata.name: "Bad" is not a DNS-1035 label (lowercase letters, digits and \'-\', starting with a letter, at most 63 characters)',
      'conf/a.yaml: spec.targetIP: "nope" is not an IPv4 address',
      'conf/a.yaml: spec.sources[0].sourceIP: "1.2.3" is not an IPv4 address',
      'conf/a.yaml: spec.ports[0].protocol: "SCTP" is not supported (only TCP)',
      'conf/a.yaml: spec.ports[0].port: 99999 is not a port number (1..65535)',
    ]);
  });
});

describe('listConfFiles', () => {
  let dir: { dir: string; remove: () => void } | undefined;
  afterEach(() => dir?.remove());

  it('lists .yaml and .yml files and symlinks to files directly in the directory, sorted, and says why it skipped each other entry', async () => {
    dir = tempDir();
    const root = dir.dir;
    const confDir = path.join(root, 'conf');
    fs.mkdirSync(path.join(confDir, 'sub.yaml'), { recursive: true });
    fs.mkdirSync(path.join(confDir, '..2024_01_01'), { recursive: true });
    fs.writeFileSync(path.join(confDir, '..2024_01_01', 'linked.yaml'), 'x');
    fs.symlinkSync('..2024_01_01', path.join(confDir, '..data'));
    fs.symlinkSync('..data/linked.yaml', path.join(confDir, 'm-linked.yaml'));
    fs.writeFileSync(path.join(root, 'outside.yaml'), 'x');
    fs.symlinkSync('../outside.yaml', path.join(confDir, 'z-outside.yaml'));
    fs.symlinkSync('missing.yaml', path.join(confDir, 'dangling.yaml'));
    for (const name of ['b.yaml', 'a.yml', 'C.yaml', '.hidden.yaml', 'notes.txt', 'x.yaml.bak', 'yaml', 'sub.yaml/inner.yaml', 'new\nline.yaml']) {
      fs.writeFileSync(path.join(confDir, name), 'x');
    }
    const listing = await listConfFiles(confDir);
    expect(listing.files).toEqual(['C.yaml', 'a.yml', 'b.yaml', 'm-linked.yaml', 'z-outside.yaml'].map((name) => path.join(confDir, name)));
    // Every other entry is named with the reason, except the ConfigMap volume's own `..` entries.
    expect(listing.skipped.map((problem) => problem.message.slice(confDir.length + 1))).toEqual([
      '".hidden.yaml": skipped: its name starts with \'.\'',
      '"dangling.yaml": skipped: a symlink to nothing',
      '"new\\nline.yaml": skipped: its name has a control character',
      '"notes.txt": skipped: not a .yaml or .yml file',
      '"sub.yaml": skipped: it is a directory, not a regular file',
      '"x.yaml.bak": skipped: not a .yaml or .yml file',
      '"yaml": skipped: not a .yaml or .yml file',
    ]);
  });

  it('names the directory when it cannot be read', async () => {
    await expect(listConfFiles('/nonexistent/conf')).rejects.toThrow(/^\/nonexistent\/conf: cannot read the conf directory/);
  });
});

describe('unknown fields', () => {
  it('names each field the ExternalService API does not have, with the known field it resembles, and still loads the file', () => {
    const spec = `  targetIP: 192.168.122.139
  sources:
    - service: {namespace: ns1, name: my-service1, namspace: x}
      sourceIP: 192.168.122.200
      bidirectonal: false
  ports:
    - {protocol: TCP, port: 8000, targetport: 9000}
  extra: 1
`;
    const parsed = parseExternalService(conf(spec, 'metadata:\n  name: es1\n  labels: {a: b}\n  nam: x\n'), FILE);
    expect(parsed.errors).toEqual([]);
    expect(parsed.service?.ports).toEqual([{ protocol: 'TCP', port: 8000, targetPort: 8000 }]);
    expect(parsed.unknownFields.map((problem) => problem.message)).toEqual([
      'conf/a.yaml: metadata.nam: unknown field, ignored (did you mean "name"?)',
      'conf/a.yaml: spec.sources[0].service.namspace: unknown field, ignored (did you mean "namespace"?)',
      'conf/a.yaml: spec.sources[0].bidirectonal: unknown field, ignored (did you mean "bidirectional"?)',
      'conf/a.yaml: spec.ports[0].targetport: unknown field, ignored (did you mean "targetPort"?)',
      'conf/a.yaml: spec.extra: unknown field, ignored',
    ]);
  });

  it('accepts what kubectl get -o yaml adds to an object', () => {
    const metadata = 'metadata:\n  name: es1\n  uid: u\n  resourceVersion: "1"\n  annotations: {x: y}\n  creationTimestamp: null\n';
    expect(parseExternalService(`${conf(VALID_SPEC, metadata)}status: {}\n`, FILE).unknownFields).toEqual([]);
  });
});

describe('loadExternalServices', () => {
  let dir: { dir: string; remove: () => void } | undefined;
  afterEach(() => dir?.remove());

  it('reports a file whose aliases explode as a problem of that file and still loads the others', async () => {
    dir = tempDir();
    fs.writeFileSync(path.join(dir.dir, 'a.yaml'), aliasBomb());
    fs.writeFileSync(path.join(dir.dir, 'b.yaml'), conf(VALID_SPEC));
    const loaded = await loadExternalServices(dir.dir);
    expect(loaded.services.map((service) => service.name)).toEqual(['es1']);
    expect(loaded.errors.map((error) => error.message)).toEqual([expect.stringMatching(/a\.yaml: invalid YAML: its aliases expand it to more than/)]);
  });

  it('reports the first 20 problems of a file with thousands of bad entries, and a count of the rest', () => {
    const ports = Array.from({ length: 25_000 }, () => '{port: 1}').join(', ');
    const errors = messages(conf(`  targetIP: 10.0.0.1\n  ports: [${ports}]\n`));
    expect(errors).toHaveLength(21);
    expect(errors[0]).toBe('conf/a.yaml: spec.ports[1].port: 1 is also the port of spec.ports[0]');
    expect(errors[20]).toBe('conf/a.yaml: and 24979 more problem(s)');
  });

  it('rejects more sources times ports than one forwarder may hold', () => {
    const sources = Array.from({ length: 100 }, (_, index) => `{service: {namespace: a, name: s${index}}, sourceIP: 10.0.1.${index + 1}}`).join(', ');
    const ports = Array.from({ length: 100 }, (_, index) => `{port: ${index + 1}}`).join(', ');
    expect(messages(conf(`  targetIP: 10.0.0.1\n  sources: [${sources}]\n  ports: [${ports}]\n`))).toEqual([
      'conf/a.yaml: spec: 100 sources x 100 ports are 10000 tunnels, more than the 8192 one forwarder may hold',
    ]);
  });

  it('shows a mapping or list where a name is expected by its kind, and a long value cut short', () => {
    expect(messages(conf(VALID_SPEC, 'metadata:\n  name: {a: [1, 2]}\n'))).toEqual([
      "conf/a.yaml: metadata.name: a mapping is not a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters)",
    ]);
    expect(messages(conf(`  targetIP: ${'x'.repeat(200)}\n`))).toEqual([`conf/a.yaml: spec.targetIP: "${'x'.repeat(76)}... is not an IPv4 address`]);
  });

  it('keeps the valid files, reports the invalid ones and rejects a name already used by an earlier file', async () => {
    dir = tempDir();
    const write = (name: string, text: string): void => fs.writeFileSync(path.join(dir!.dir, name), text);
    write('a.yaml', conf(VALID_SPEC));
    write('b.yaml', conf('  targetIP: 10.0.0.1\n', 'metadata: {name: es2}\n'));
    write('c.yaml', conf('  targetIP: 10.0.0.2\n'));
    write('d.yaml', 'kind: [\n');
    const loaded = await loadExternalServices(dir.dir);
    expect(loaded.services.map((service) => [path.basename(service.file), service.name])).toEqual([
      ['a.yaml', 'es1'],
      ['b.yaml', 'es2'],
    ]);
    expect(loaded.errors.map((error) => error.message)).toEqual([
      `${path.join(dir.dir, 'c.yaml')}: metadata.name: "es1" is already used by ${path.join(dir.dir, 'a.yaml')}`,
      expect.stringMatching(/d\.yaml: invalid YAML/),
    ]);
  });
});
