import { describe, expect, it } from 'vitest';
import { rememberedForm, resolveConf, type ConfEntry } from '../../../controller/desired.js';
import { parseExternalService } from '../../../lib/externalservice.js';
import { ConfigError } from '../../../lib/errors.js';

function es(name: string, targetIP = '192.168.122.139'): string {
  return `apiVersion: externalservice.example.com/v1alpha1
kind: ExternalService
metadata:
  name: ${name}
spec:
  targetIP: ${targetIP}
  sources:
    - service: {namespace: ns1, name: my-service1}
      sourceIP: 192.168.122.200
  ports:
    - {protocol: TCP, port: 8000, targetPort: 8000}
`;
}

const BROKEN = 'kind: ExternalService\nmetadata: {name: "bad name $(touch x)"}\nspec: {targetIP: 1.2.3.4}\n';
const entry = (name: string, text: string | undefined): ConfEntry =>
  text === undefined ? { file: `/conf/${name}`, text, readError: new ConfigError(`/conf/${name}`, undefined, 'cannot read: EACCES') } : { file: `/conf/${name}`, text };

describe('resolveConf', () => {
  it.each<{
    title: string;
    entries: ConfEntry[];
    remembered: Record<string, string>;
    inForce: string[];
    remember: string[];
    invalid: { file: string; lastValidInForce: boolean }[];
  }>([
    {
      title: 'uses every valid file, in conf file order, and remembers each',
      entries: [entry('a.yaml', es('alpha')), entry('b.yaml', es('beta'))],
      remembered: {},
      inForce: ['alpha', 'beta'],
      remember: ['a.yaml', 'b.yaml'],
      invalid: [],
    },
    {
      title: 'keeps the last valid version of a file that became invalid',
      entries: [entry('a.yaml', es('alpha')), entry('b.yaml', BROKEN)],
      remembered: { 'b.yaml': es('beta') },
      inForce: ['alpha', 'beta'],
      remember: ['a.yaml', 'b.yaml'],
      invalid: [{ file: '/conf/b.yaml', lastValidInForce: true }],
    },
    {
      title: 'ignores an invalid file that was never valid, without touching the others',
      entries: [entry('a.yaml', es('alpha')), entry('new.yaml', BROKEN)],
      remembered: { 'a.yaml': es('alpha') },
      inForce: ['alpha'],
      remember: ['a.yaml'],
      invalid: [{ file: '/conf/new.yaml', lastValidInForce: false }],
    },
    {
      title: 'keeps the last valid version of a file that cannot be read',
      entries: [entry('a.yaml', undefined)],
      remembered: { 'a.yaml': es('alpha') },
      inForce: ['alpha'],
      remember: ['a.yaml'],
      invalid: [{ file: '/conf/a.yaml', lastValidInForce: true }],
    },
    {
      title: 'forgets the files that were removed',
      entries: [entry('a.yaml', es('alpha'))],
      remembered: { 'a.yaml': es('alpha'), 'gone.yaml': es('gone') },
      inForce: ['alpha'],
      remember: ['a.yaml'],
      invalid: [],
    },
    {
      title: 'rejects a second file using a name already in use, falling back to its own last valid version',
      entries: [entry('a.yaml', es('alpha')), entry('b.yaml', es('alpha'))],
      remembered: { 'b.yaml': es('beta') },
      inForce: ['alpha', 'beta'],
      remember: ['a.yaml', 'b.yaml'],
      invalid: [{ file: '/conf/b.yaml', lastValidInForce: true }],
    },
    {
      title: 'lets a valid file win over another file’s last valid version with the same name',
      entries: [entry('a.yaml', BROKEN), entry('b.yaml', es('alpha'))],
      remembered: { 'a.yaml': es('alpha') },
      inForce: ['alpha'],
      remember: ['b.yaml'],
      invalid: [{ file: '/conf/a.yaml', lastValidInForce: false }],
    },
    {
      title: 'does not trust a remembered version that is itself invalid',
      entries: [entry('a.yaml', BROKEN)],
      remembered: { 'a.yaml': BROKEN },
      inForce: [],
      remember: [],
      invalid: [{ file: '/conf/a.yaml', lastValidInForce: false }],
    },
  ])('$title', ({ entries, remembered, inForce, remember, invalid }) => {
    const resolved = resolveConf(entries, remembered);
    expect(resolved.services.map((service) => service.name)).toEqual(inForce);
    expect(Object.keys(resolved.lastValid).sort()).toEqual(remember);
    expect(resolved.invalid.map(({ file, lastValidInForce }) => ({ file, lastValidInForce }))).toEqual(invalid);
  });

  it('names the file and the field of every problem', () => {
    const resolved = resolveConf([entry('b.yaml', BROKEN)], {});
    expect(resolved.invalid[0]?.errors.map((error) => error.message)).toContainEqual(expect.stringMatching(/^\/conf\/b\.yaml: metadata\.name: /));
  });

  it('remembers the exact text of the version in force', () => {
    const resolved = resolveConf([entry('a.yaml', BROKEN)], { 'a.yaml': es('alpha', '10.0.0.1') });
    expect(resolved.lastValid['a.yaml']).toBe(es('alpha', '10.0.0.1'));
    expect(resolved.services[0]).toMatchObject({ name: 'alpha', targetIP: '10.0.0.1', file: '/conf/a.yaml' });
  });

  it('remembers a valid file in a compact form that the parser reads back to the same ExternalService', () => {
    const text = `${es('alpha')}    - {port: 9000, targetPort: 9001, name: "web"}\n`.replace('      sourceIP: 192.168.122.200', '      sourceIP: 192.168.122.200\n      bidirectional: false');
    const resolved = resolveConf([entry('a.yaml', `# a comment that is not remembered\n${text}`)], {});
    const remembered = resolved.lastValid['a.yaml']!;
    expect(remembered.length).toBeLessThan(text.length * 0.8);
    const { file: _file, ...original } = parseExternalService(text, '/conf/a.yaml').service!;
    expect(parseExternalService(remembered, '/conf/a.yaml').service).toEqual({ ...original, file: '/conf/a.yaml' });
    expect(rememberedForm(original)).toBe(remembered);
    // The file turns invalid: the remembered form stays in force.
    const later = resolveConf([entry('a.yaml', BROKEN)], resolved.lastValid);
    expect(later.services).toEqual([{ ...original, file: '/conf/a.yaml' }]);
  });

  it('remembers names that YAML would retype (true, 0123) as the same strings, so that their last valid version stays in force', () => {
    const text = es('"true"').replace('{namespace: ns1, name: my-service1}', '{namespace: "0123", name: "true"}');
    const resolved = resolveConf([entry('true.yaml', text)], {});
    const { file: _file, ...original } = parseExternalService(text, '/conf/true.yaml').service!;
    expect(original).toMatchObject({ name: 'true', sources: [{ service: { namespace: '0123', name: 'true' } }] });
    const later = resolveConf([entry('true.yaml', text.replaceAll('"', ''))], resolved.lastValid);
    expect(later.services).toEqual([{ ...original, file: '/conf/true.yaml' }]);
    expect(later.lastValid).toEqual(resolved.lastValid);
  });
});
