import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readRulesFile, type ParsedRulesFile } from '../../../gateway/rules-file.js';
import { fixture } from './fixtures.js';

describe('readRulesFile', () => {
  let dir: string;
  let file: string;
  const text = fixture('rules.yaml');
  // The same length, another gateway rule: the document must be read again.
  const changed = text.replace('--dport 80 ', '--dport 81 ');

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-ext-rules-file-'));
    file = join(dir, 'rules.yaml');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reuses the document of the last valid read while the text stays the same, and reads a changed text again', () => {
    expect(changed).not.toBe(text);
    expect(changed.length).toBe(text.length);
    const cache: { last?: ParsedRulesFile | undefined } = {};
    writeFileSync(file, text);
    const first = readRulesFile(file, cache);
    if (first.kind !== 'ok') throw new Error(`not read: ${first.kind}`);
    // Written again (as the controller publishes), the same text.
    writeFileSync(file, text);
    const again = readRulesFile(file, cache);
    expect(again.kind === 'ok' && again.rules).toBe(first.rules);

    writeFileSync(file, changed);
    const next = readRulesFile(file, cache);
    if (next.kind !== 'ok') throw new Error(`not read: ${next.kind}`);
    expect(next.rules).not.toBe(first.rules);
    expect(next).toEqual(readRulesFile(file));
    expect(JSON.stringify(next.rules.gateway)).toContain('--dport 81 ');
  });

  it('reports a missing or invalid file as before, and takes a valid text up again after an invalid one', () => {
    const cache: { last?: ParsedRulesFile | undefined } = {};
    expect(readRulesFile(file, cache)).toEqual({ kind: 'absent' });
    writeFileSync(file, text);
    const first = readRulesFile(file, cache);
    writeFileSync(file, '"forwarder": {}\n');
    expect(readRulesFile(file, cache)).toMatchObject({ kind: 'invalid' });
    writeFileSync(file, text);
    const back = readRulesFile(file, cache);
    expect(back).toEqual(first);
    rmSync(file);
    expect(readRulesFile(file, cache)).toEqual({ kind: 'absent' });
  });

  it('parses afresh without a cache', () => {
    writeFileSync(file, text);
    const first = readRulesFile(file);
    const second = readRulesFile(file);
    expect(second).toEqual(first);
    expect(first.kind === 'ok' && second.kind === 'ok' && first.rules !== second.rules).toBe(true);
  });
});
