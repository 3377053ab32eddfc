import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forwarderDocument, gatewayDocument } from '../../../controller/desired.js';
import { permitsFor } from '../../../gateway/sshd-config.js';
import { natRules, parseRules, serializeRules, type RulesDocument } from '../../../lib/rules.js';

/** The parts of the rules document each reader gets (rules per forwarder). */

const FILE = path.join(import.meta.dirname, '..', '..', 'fixtures', 'genrule', 'readme-sample', 'expected.yaml');
const sample = parseRules(fs.readFileSync(FILE, 'utf8'), FILE);
// The README's sample has one forwarder; a second one shows that each gets only its own.
const rules: RulesDocument = { ...sample, forwarder: { ...sample.forwarder, second: Object.values(sample.forwarder)[0] as (typeof sample.forwarder)[string] } };
const names = Object.keys(rules.forwarder);

describe('forwarderDocument', () => {
  it('holds only its own forwarder’s entry, unchanged, and reads back as a rules document', () => {
    expect(names.length).toBeGreaterThan(1);
    for (const name of names) {
      const document = parseRules(serializeRules(forwarderDocument(rules, name)), 'forwarder document');
      expect(document).toEqual({ forwarder: { [name]: rules.forwarder[name] }, gateway: {} });
    }
  });

  it('is an empty document for a forwarder without rules (its pod has no IP yet)', () => {
    expect(parseRules(serializeRules(forwarderDocument(rules, 'absent')), 'forwarder document')).toEqual({ forwarder: {}, gateway: {} });
  });
});

describe('gatewayDocument', () => {
  const document = parseRules(serializeRules(gatewayDocument(rules)), 'gateway document');

  it('keeps the gateway sections and every tunnel line, so that each IP’s sshd permits exactly the same', () => {
    expect(document.gateway).toEqual(rules.gateway);
    for (const ip of Object.keys(rules.gateway)) expect(permitsFor(document, ip)).toEqual(permitsFor(rules, ip));
  });

  it('leaves out the forwarders’ iptables rules', () => {
    expect(names.some((name) => natRules(rules.forwarder[name]?.['iptables-rule'] ?? '').length > 0)).toBe(true);
    for (const name of names) expect(document.forwarder[name]?.['iptables-rule']).toBe('');
  });
});
