import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { aliasBomb } from '../helpers/hostile.js';
import { ControllerBench, externalService } from './controller-run-fixture.js';

/** bin/controller against conf files a careless or hostile user might write. */

let bench: ControllerBench;
afterEach(() => bench.remove());

describe('controller: one hostile conf file among good ones', () => {
  it('genrule reports an alias bomb by file name and prints the rules of the other file', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('a-bomb.yaml', aliasBomb());
    bench.writeConf('b.yaml', externalService('es-b'));
    const result = await bench.run(['genrule', bench.conf]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/a-bomb\.yaml: invalid YAML: its aliases expand it to more than \d+ values/);
    expect(result.stdout).toContain('"es-b":');
  });

  it('the loop still creates the pod of the good file and exits 2 naming the bad one', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('a-bomb.yaml', aliasBomb());
    bench.writeConf('b.yaml', externalService('es-b'));
    const result = await bench.once();
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain('1 invalid conf file(s): a-bomb.yaml (everything else was applied)');
    expect(bench.object('pods', 'external-services', 'es-b')).toBeDefined();
  });
});

describe('controller validate: addresses that cannot work', () => {
  it('names each field whose address is not unicast and exits 2', async () => {
    bench = new ControllerBench();
    bench.writeConf('a.yaml', externalService('es-a', { targetIP: '127.0.0.1', sourceIP: '0.0.0.0' }));
    const result = await bench.run(['validate', bench.conf]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('a.yaml: spec.targetIP: "127.0.0.1" is a loopback address (127.0.0.0/8)');
    expect(result.stderr).toContain('a.yaml: spec.sources[0].sourceIP: "0.0.0.0" is unspecified (0.0.0.0/8)');
  });
});

describe('controller genrule: a cluster too large for the rules document', () => {
  it('leaves out the ExternalService whose service has 20,000 ports, naming its file, and prints the others', async () => {
    bench = new ControllerBench();
    const service = (name: string, ports: number): Record<string, unknown> => ({
      namespace: 'ns1',
      name,
      type: 'ClusterIP',
      clusterIP: name === 'big' ? '10.96.0.21' : '10.96.0.22',
      ports: Array.from({ length: ports }, (_, index) => ({ name: `p${index}`, protocol: 'TCP', port: index + 1, targetPort: index + 1 })),
    });
    const snapshotFile = path.join(bench.root, 'snapshot.json');
    fs.writeFileSync(snapshotFile, JSON.stringify({ version: 1, pods: [], services: [service('big', 20_000), service('small', 1)], endpoints: [] }));
    bench.writeConf('a.yaml', externalService('es-a').replace('name: my-service1', 'name: big'));
    bench.writeConf('b.yaml', externalService('es-b').replace('name: my-service1', 'name: small'));
    const result = await bench.run(['genrule', '--snapshot', snapshotFile, bench.conf]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain(`${path.join(bench.conf, 'a.yaml')}: es-a: its rules are left out: its remote-ssh-tunnel block would be 20000 lines`);
    expect(result.stdout).toContain('"es-b":');
    expect(result.stdout).not.toContain('"es-a":');
  });
});

describe('controller: silent typos and skipped files', () => {
  const typo = (name: string): string => externalService(name).replace('      sourceIP:', '      bidirectonal: false\n      sourceIP:').replace('targetPort: 8000}', 'targetPort: 8000, targetport: 9000}');

  it('validate warns about each unknown field and each skipped entry and exits 0; --strict makes them errors and exits 2', async () => {
    bench = new ControllerBench();
    bench.writeConf('a.yaml', typo('es-a'));
    bench.writeConf('b\n.yaml', externalService('es-b'));
    const lenient = await bench.run(['validate', bench.conf]);
    expect(lenient.exitCode, lenient.stderr).toBe(0);
    expect(lenient.stderr).toMatch(/WARN .*a\.yaml: spec\.sources\[0\]\.bidirectonal: unknown field, ignored \(did you mean "bidirectional"\?\)/);
    expect(lenient.stderr).toMatch(/WARN .*a\.yaml: spec\.ports\[0\]\.targetport: unknown field, ignored \(did you mean "targetPort"\?\)/);
    expect(lenient.stderr).toMatch(/WARN .*"b\\n\.yaml": skipped: its name has a control character/);
    const strict = await bench.run(['validate', '--strict', bench.conf]);
    expect(strict.exitCode, strict.stderr).toBe(2);
    expect(strict.stderr).toMatch(/ERROR .*a\.yaml: spec\.sources\[0\]\.bidirectonal: unknown field/);
    expect(strict.stderr).toMatch(/ERROR .*"b\\n\.yaml": skipped: its name has a control character/);
  });

  it('the loop and genrule warn about them too, and still apply the file', async () => {
    bench = new ControllerBench();
    bench.seedReadmeCluster();
    bench.writeConf('a.yaml', typo('es-a'));
    bench.writeConf('notes.txt', 'x');
    const result = await bench.once();
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/WARN .*a\.yaml: spec\.ports\[0\]\.targetport: unknown field, ignored/);
    expect(result.stderr).toMatch(/WARN .*"notes\.txt": skipped: not a \.yaml or \.yml file/);
    expect(bench.object('pods', 'external-services', 'es-a')).toBeDefined();
    const genrule = await bench.run(['genrule', bench.conf]);
    expect(genrule.stderr).toMatch(/WARN .*a\.yaml: spec\.sources\[0\]\.bidirectonal: unknown field/);
    expect(genrule.stderr).toMatch(/WARN .*"notes\.txt": skipped/);
  });
});
