import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseYaml } from '../../../lib/yaml.js';
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
