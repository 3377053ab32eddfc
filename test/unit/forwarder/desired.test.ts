import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { desiredFromSources, desiredFromText, type RulesMemory } from '../../../forwarder/desired.js';
import type { ApiRules } from '../../../forwarder/rules-source.js';
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

describe('desiredFromSources', () => {
  const target = { name: 'cm', key: 'data.yaml', namespace: 'external-services' };
  const settings = { dataFile: FILE, name: 'a', sshUser: undefined, rulesConfigMap: target };
  const apiCopy = (tunnel: string, live = true): ApiRules => ({
    live,
    copy: { resourceVersion: '7', text: forwarderData('a', { 'ssh-tunnel': [tunnel] }) },
  });

  it('reports a data file that cannot be read as a ConfigError naming it, when the file is in force', () => {
    expect(() => desiredFromSources({ ...settings, dataFile: '/nonexistent/data.yaml' }, undefined, {})).toThrow(/\/nonexistent\/data\.yaml: does not exist/);
  });

  it("takes the API's copy, naming it as the source, even when the data file cannot be read", () => {
    const result = desiredFromSources({ ...settings, dataFile: '/nonexistent/data.yaml' }, apiCopy('1:t:2,h'), {});
    expect(result.desired.tunnels).toEqual([{ kind: 'local', spec: '1:t:2', host: 'h' }]);
    expect(result.source).toBe('configmap external-services/cm key data.yaml through the API, resourceVersion 7');
  });

  it('keeps the last copy while the data file stays as it was, and takes the file once it changes', () => {
    const memory: RulesMemory = {};
    desiredFromSources(settings, apiCopy('1:t:2,h'), memory);

    const lost = desiredFromSources(settings, apiCopy('1:t:2,h', false), memory);
    expect(lost.source).toContain('(its last copy: the API cannot be reached)');
    expect(lost.desired.tunnels.map((tunnel) => tunnel.spec)).toEqual(['1:t:2']);

    // As if the file had been different in the last cycle that used the copy.
    const changed = desiredFromSources(settings, apiCopy('1:t:2,h', false), { fileAtLastApiUse: 'another fingerprint' });
    expect(changed.source).toBe(`data file ${FILE}`);
    expect(changed.desired.hasEntry).toBe(false);
  });

  it('names the ConfigMap and field when the copy from the API is malformed', () => {
    expect(() => desiredFromSources(settings, { live: true, copy: { resourceVersion: '1', text: 'forwarder: [' } }, {})).toThrow(
      /^configmap external-services\/cm key data\.yaml: invalid YAML/,
    );
  });
});
