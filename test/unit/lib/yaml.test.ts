import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import fc from 'fast-check';
import { dumpLiteralYaml, dumpLiteralYamlSlowly, parseYaml } from '../../../lib/yaml.js';
import { aliasBomb } from '../../helpers/hostile.js';

function failure(text: string): string {
  try {
    parseYaml(text, 'conf/a.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return 'parsed';
}

describe('parseYaml', () => {
  it('rejects an alias bomb naming the file, without expanding it', () => {
    expect(failure(aliasBomb())).toMatch(/^conf\/a\.yaml: invalid YAML: its aliases expand it to more than \d+ values$/);
  });

  it('rejects more than 100 aliases and nesting deeper than 100', () => {
    const aliases = `a: &a 1\nb: [${Array(101).fill('*a').join(', ')}]\n`;
    expect(failure(aliases)).toMatch(/^conf\/a\.yaml: invalid YAML: aliases exceeded maxAliases \(100\)/);
    expect(failure(`a: ${'['.repeat(101)}${']'.repeat(101)}\n`)).toMatch(/^conf\/a\.yaml: invalid YAML: nesting exceeded maxDepth \(100\)/);
  });

  it('accepts a few aliases that expand modestly', () => {
    expect(parseYaml('a: &a {x: 1}\nb: [*a, *a]\n', 'f')).toEqual({ a: { x: 1 }, b: [{ x: 1 }, { x: 1 }] });
  });
});

describe('dumpLiteralYaml', () => {
  // Keys and lines from the characters that decide the layout: quotes, backslashes, spaces at
  // either end, tabs, empty lines, a missing final newline, non-ASCII.
  const text = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '-', '.', ':', ',', ' ', '"', '\\', '\t', '\n', 'é', '#', '|', '{'), maxLength: 12 });
  const line = fc.oneof(fc.constantFrom('PREROUTING -t nat -j DNAT --to-destination 10.0.0.1:2000', '8000:192.168.1.1:8000,10.0.0.2'), text);
  const block = fc.oneof(fc.constant(''), fc.array(line, { minLength: 1, maxLength: 4 }).map((lines) => lines.map((entry) => `${entry}\n`).join('')), text);
  const key = fc.oneof(fc.constantFrom('forwarder', 'gateway', 'iptables-rule', 'es-1', '10.0.0.1'), text);
  const document = fc.letrec((tie) => ({
    node: fc.dictionary(key, fc.oneof({ depthSize: 'small' }, block, tie('node')), { maxKeys: 4 }),
  })).node;

  it('writes every document exactly as js-yaml does, on the direct path and off it', () => {
    fc.assert(
      fc.property(document, (value) => {
        expect(dumpLiteralYaml(value)).toBe(dumpLiteralYamlSlowly(value));
      }),
      { numRuns: 2000 },
    );
  });

  it("writes a rules document in genrule.py's layout, and a block that needs an indentation indicator", () => {
    const rules = { forwarder: { 'es-1': { 'iptables-rule': 'PREROUTING a\nPOSTROUTING b\n', 'remote-ssh-tunnel': '', 'ssh-tunnel': '1:2:3,4\n' } }, gateway: {} };
    const expected = '"forwarder":\n  "es-1":\n    "iptables-rule": |\n      PREROUTING a\n      POSTROUTING b\n    "remote-ssh-tunnel": ""\n    "ssh-tunnel": |\n      1:2:3,4\n"gateway": {}\n';
    expect(dumpLiteralYaml(rules)).toBe(expected);
    expect(dumpLiteralYaml({ a: '  indented\n' })).toBe('"a": |2\n    indented\n');
  });
});
