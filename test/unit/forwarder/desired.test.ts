import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { desiredFromText, readDesired } from '../../../forwarder/desired.js';
import { forwarderData } from '../../helpers/forwarder-lab.js';

const FILE = path.join(import.meta.dirname, '../../fixtures/forwarder/data.yaml');
const text = fs.readFileSync(FILE, 'utf8');

describe('desiredFromText', () => {
  it('reads the tunnels and rules of this forwarder only', () => {
    const desired = desiredFromText(text, FILE, 'my-external-service1', undefined);
    expect(desired.hasEntry).toBe(true);
    expect(desired.tunnels).toEqual([
      { kind: 'local', spec: '2049:192.168.122.139:8000', host: '192.168.122.200' },
      { kind: 'local', spec: '2050:192.168.122.139:8000', host: '192.168.122.201' },
      { kind: 'remote', spec: '192.168.122.200:2049:10.96.0.11:80', host: '192.168.122.200' },
      { kind: 'remote', spec: '192.168.122.201:2049:10.96.0.12:80', host: '192.168.122.201' },
    ]);
    expect(desired.rules.map((rule) => rule.chain)).toEqual(['PREROUTING', 'POSTROUTING', 'PREROUTING', 'POSTROUTING']);
  });

  it('wants no tunnels and no rules when the file has no entry for the name', () => {
    expect(desiredFromText(text, FILE, 'absent', undefined)).toEqual({ tunnels: [], rules: [], hasEntry: false });
  });

  it('prefixes the configured user to hosts that name none', () => {
    const desired = desiredFromText(forwarderData('a', { 'ssh-tunnel': ['1:t:2,h1', '3:t:4,root@h2'] }), FILE, 'a', 'fwd');
    expect(desired.tunnels.map((tunnel) => tunnel.host)).toEqual(['fwd@h1', 'root@h2']);
  });

  it.each([
    ['an empty file', '', /rules file is empty/],
    ['invalid YAML', 'forwarder: [', /invalid YAML/],
    ['a malformed tunnel line', forwarderData('es', { 'ssh-tunnel': ['2049-x,h'] }), /forwarder\.es\.ssh-tunnel line 1/],
    ['a rule without a target', forwarderData('es', { 'iptables-rule': ['PREROUTING -t nat -p tcp'] }), /forwarder\.es\.iptables-rule line 1: "-p" where "-m" belongs/],
    ['a rule for another table', forwarderData('es', { 'iptables-rule': ['INPUT -t filter -j DROP'] }), /line 1: only .* rules are accepted, not one starting with "INPUT"/],
  ])('rejects %s with an error naming the file and field', (_title, body, reason) => {
    expect(() => desiredFromText(body, FILE, 'es', undefined)).toThrow(ConfigError);
    expect(() => desiredFromText(body, FILE, 'es', undefined)).toThrow(reason);
  });
});

describe('readDesired', () => {
  it('reports a data file that cannot be read as a ConfigError naming it', async () => {
    await expect(readDesired('/nonexistent/data.yaml', 'es', undefined)).rejects.toThrow(/\/nonexistent\/data\.yaml: does not exist/);
  });
});
