import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { blockLines, emptyRules, natRules, parseRules, parseTunnelLine, serializeRules, toBlock, type RulesDocument } from '../../../lib/rules.js';

const SAMPLE: RulesDocument = {
  forwarder: {
    'my-external-service1': {
      'iptables-rule':
        'PREROUTING -t nat -m tcp -p tcp --dst 10.244.0.50 --src 10.244.0.11 --dport 8000 -j DNAT --to-destination 10.244.0.50:2049\n' +
        'POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2049 -j SNAT --to-source 10.244.0.50\n',
      'remote-ssh-tunnel': '192.168.122.200:2049:10.96.0.11:80,192.168.122.200\n',
      'ssh-tunnel': '2049:192.168.122.139:8000,192.168.122.200\n',
    },
  },
  gateway: {
    '192.168.122.200': {
      'iptables-rule':
        'PREROUTING -t nat -m tcp -p tcp --dst 192.168.122.200 --src 192.168.122.139 --dport 80 -j DNAT --to-destination 192.168.122.200:2049\n',
    },
    '192.168.122.201': { 'iptables-rule': '' },
  },
};

// What genrule.py's yaml.dump(..., indent=2, default_flow_style=False, default_style='|') prints.
const SAMPLE_TEXT = `"forwarder":
  "my-external-service1":
    "iptables-rule": |
      PREROUTING -t nat -m tcp -p tcp --dst 10.244.0.50 --src 10.244.0.11 --dport 8000 -j DNAT --to-destination 10.244.0.50:2049
      POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2049 -j SNAT --to-source 10.244.0.50
    "remote-ssh-tunnel": |
      192.168.122.200:2049:10.96.0.11:80,192.168.122.200
    "ssh-tunnel": |
      2049:192.168.122.139:8000,192.168.122.200
"gateway":
  "192.168.122.200":
    "iptables-rule": |
      PREROUTING -t nat -m tcp -p tcp --dst 192.168.122.200 --src 192.168.122.139 --dport 80 -j DNAT --to-destination 192.168.122.200:2049
  "192.168.122.201":
    "iptables-rule": ""
`;

describe('serializeRules', () => {
  it("prints genrule.py's layout: sorted quoted keys, | blocks, \"\" for empty", () => {
    expect(serializeRules(SAMPLE)).toBe(SAMPLE_TEXT);
  });

  it('prints empty sections as {}', () => {
    expect(serializeRules(emptyRules())).toBe('"forwarder": {}\n"gateway": {}\n');
  });

  it('round-trips through parseRules', () => {
    expect(parseRules(serializeRules(SAMPLE), 'rules.yaml')).toEqual(SAMPLE);
  });
});

describe('parseRules', () => {
  it('treats a missing section or key as empty', () => {
    expect(parseRules('"forwarder":\n  "es": {"ssh-tunnel": "2049:1.2.3.4:80,5.6.7.8\\n"}\n', 'f')).toEqual({
      forwarder: { es: { 'iptables-rule': '', 'remote-ssh-tunnel': '', 'ssh-tunnel': '2049:1.2.3.4:80,5.6.7.8\n' } },
      gateway: {},
    });
  });

  it.each([
    ['', 'f: rules file is empty'],
    ['   \n', 'f: rules file is empty'],
    ['"forwarder": [\n', 'f: invalid YAML'],
    ['- a\n', 'f: rules file must be a mapping'],
    ['"other": {}\n', 'f: other: unknown top-level key'],
    ['"forwarder": 3\n', 'f: forwarder: must be a mapping'],
    ['"forwarder": {"es": {"ssh-tunnel": 5}}\n', 'f: forwarder.es.ssh-tunnel: must be a block of lines'],
    ['"forwarder": {"es": {"tunnel": ""}}\n', 'f: forwarder.es.tunnel: unknown key'],
    ['"forwarder": {"es": {"ssh-tunnel": "2049:1.2.3.4:80\\n"}}\n', 'f: forwarder.es.ssh-tunnel line 1: "2049:1.2.3.4:80" is not PORT:HOST:PORT,SSH_HOST'],
    ['"forwarder": {"es": {"remote-ssh-tunnel": "ok\\n"}}\n', 'f: forwarder.es.remote-ssh-tunnel line 1'],
    ['"gateway": {"300.1.1.1": {"iptables-rule": ""}}\n', 'f: gateway.300.1.1.1: key must be an IPv4 address'],
    ['"gateway": {"1.1.1.1": {"iptables-rule": "PREROUTING -t nat -p tcp\\n"}}\n', 'f: gateway.1.1.1.1.iptables-rule line 1: rule has no target'],
    // A file cut off in the middle of a rule.
    ['"gateway":\n  "1.1.1.1":\n    "iptables-rule": |\n      PREROUTING -t nat -m tcp -p tcp --dst 1.1.1.1 --src 2.2.2.2 --dport 80 -j', 'rule has no target'],
  ])('rejects %j with a message naming the file and field', (text, message) => {
    expect(() => parseRules(text, 'f')).toThrow(ConfigError);
    expect(() => parseRules(text, 'f')).toThrow(message);
  });
});

describe('blocks and lines', () => {
  it('splits a block into its non-empty lines and back', () => {
    expect(blockLines('a\n\nb\n')).toEqual(['a', 'b']);
    expect(blockLines(undefined)).toEqual([]);
    expect(toBlock(['a', 'b'])).toBe('a\nb\n');
    expect(toBlock([])).toBe('');
  });

  it('splits a tunnel line at its last comma', () => {
    expect(parseTunnelLine('2049:192.168.122.139:8000,192.168.122.200', 'ssh-tunnel')).toEqual({
      spec: '2049:192.168.122.139:8000',
      host: '192.168.122.200',
    });
    expect(parseTunnelLine('192.168.122.200:2049:10.96.0.11:80,192.168.122.200', 'remote-ssh-tunnel').spec).toBe(
      '192.168.122.200:2049:10.96.0.11:80',
    );
  });

  it('turns a block of rule lines into nat rules', () => {
    expect(natRules(SAMPLE.gateway['192.168.122.200']?.['iptables-rule'])).toHaveLength(1);
  });
});
