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

/** A whole document whose only forwarder entry "es" has the given blocks (the others empty). */
function forwarderDoc(blocks: Record<string, unknown>): string {
  const entry = { 'iptables-rule': '', 'remote-ssh-tunnel': '', 'ssh-tunnel': '', ...blocks };
  return `${JSON.stringify({ forwarder: { es: entry }, gateway: {} })}\n`;
}

function gatewayDoc(ip: string, block: string): string {
  return `${JSON.stringify({ forwarder: {}, gateway: { [ip]: { 'iptables-rule': block } } })}\n`;
}

describe('parseRules', () => {
  it('reads a document with empty sections and empty blocks as no rules', () => {
    expect(parseRules('"forwarder": {}\n"gateway": {}\n', 'f')).toEqual(emptyRules());
    expect(parseRules('"forwarder":\n  "es":\n    "iptables-rule": ""\n    "remote-ssh-tunnel": ""\n    "ssh-tunnel": ""\n"gateway": {}\n', 'f')).toEqual({
      forwarder: { es: { 'iptables-rule': '', 'remote-ssh-tunnel': '', 'ssh-tunnel': '' } },
      gateway: {},
    });
  });

  // A truncated or degenerate document must never read as "no rules": that would empty the nat
  // tables and stop every tunnel.
  it.each([
    ['{}\n', 'f: forwarder: is missing'],
    ['"forwarder": {}\n', 'f: gateway: is missing'],
    ['"forwarder":\n"gateway":\n', 'f: forwarder: has no value (a truncated file?)'],
    ['"forwarder": {}\n"gateway":', 'f: gateway: has no value (a truncated file?)'],
    ['"forwarder": {}\n"gateway":\n  "1.1.1.1":\n', 'f: gateway.1.1.1.1: has no value (a truncated file?)'],
    ['"forwarder": {}\n"gateway":\n  "1.1.1.1":\n    "iptables-rule":', 'f: gateway.1.1.1.1.iptables-rule: has no value (a truncated file?)'],
    ['"forwarder":\n  "es":\n    "iptables-rule": ""\n"gateway": {}\n', 'f: forwarder.es.remote-ssh-tunnel: is missing'],
  ])('rejects the degenerate document %j', (text, message) => {
    expect(() => parseRules(text, 'f')).toThrow(ConfigError);
    expect(() => parseRules(text, 'f')).toThrow(message);
  });

  it.each([
    ['', 'f: rules file is empty'],
    ['   \n', 'f: rules file is empty'],
    ['"forwarder": [\n', 'f: invalid YAML'],
    ['- a\n', 'f: rules file must be a mapping'],
    ['"other": {}\n', 'f: other: unknown top-level key'],
    ['"forwarder": 3\n"gateway": {}\n', 'f: forwarder: must be a mapping'],
    [forwarderDoc({ 'ssh-tunnel': 5 }), 'f: forwarder.es.ssh-tunnel: must be a block of lines'],
    [forwarderDoc({ tunnel: '' }), 'f: forwarder.es.tunnel: unknown key'],
    [forwarderDoc({ 'ssh-tunnel': '2049:1.2.3.4:80\n' }), 'f: forwarder.es.ssh-tunnel line 1: "2049:1.2.3.4:80" is not PORT:HOST:PORT,SSH_HOST'],
    [forwarderDoc({ 'remote-ssh-tunnel': 'ok\n' }), 'f: forwarder.es.remote-ssh-tunnel line 1'],
    [gatewayDoc('300.1.1.1', ''), 'f: gateway.300.1.1.1: the key is not an IPv4 address'],
    [gatewayDoc('1.1.1.1', 'PREROUTING -t nat -p tcp\n'), 'f: gateway.1.1.1.1.iptables-rule line 1'],
    // A file cut off in the middle of a rule.
    ['"forwarder": {}\n"gateway":\n  "1.1.1.1":\n    "iptables-rule": |\n      PREROUTING -t nat -m tcp -p tcp --dst 1.1.1.1 --src 2.2.2.2 --dport 80 -j', 'f: gateway.1.1.1.1.iptables-rule line 1'],
  ])('rejects %j with a message naming the file and field', (text, message) => {
    expect(() => parseRules(text, 'f')).toThrow(ConfigError);
    expect(() => parseRules(text, 'f')).toThrow(message);
  });
});

describe('tunnel lines: nothing in them can become an ssh option', () => {
  it.each<[string, 'ssh-tunnel' | 'remote-ssh-tunnel', string]>([
    ['2049:192.168.122.139:8000,-Jevil.example', 'ssh-tunnel', 'SSH_HOST host "-Jevil.example" is neither an IPv4 address nor a host name'],
    ['2049:192.168.122.139:8000,-Eadvqlog', 'ssh-tunnel', 'SSH_HOST host "-Eadvqlog" is neither'],
    ['2049:192.168.122.139:8000,-v', 'ssh-tunnel', 'SSH_HOST host "-v" is neither'],
    ['2049:192.168.122.139:8000,-oProxyJump@host', 'ssh-tunnel', 'SSH_HOST user "-oProxyJump" is not a user name'],
    ['2049:192.168.122.139:8000,a b', 'ssh-tunnel', 'SSH_HOST host "a b" is neither'],
    ['0:192.168.122.139:8000,192.168.122.200', 'ssh-tunnel', 'PORT "0" is not a port (1..65535)'],
    ['2049:192.168.122.139:70000,192.168.122.200', 'ssh-tunnel', 'PORT "70000" is not a port'],
    ['99999:192.168.122.139:8000,192.168.122.200', 'ssh-tunnel', 'PORT "99999" is not a port'],
    ['2049:-oProxyCommand=x:8000,192.168.122.200', 'ssh-tunnel', 'HOST "-oProxyCommand=x" is neither'],
    ['2049:0.0.0.0:8000,192.168.122.200', 'ssh-tunnel', 'HOST "0.0.0.0" is unspecified'],
    ['2049:192.168.122.139:8000,1.2.3', 'ssh-tunnel', 'SSH_HOST host "1.2.3" is not an IPv4 address'],
    ['2049:192.168.122.139:8000,127.0.0.1', 'ssh-tunnel', 'SSH_HOST host "127.0.0.1" is a loopback address'],
    ['255.255.255.255:2049:10.96.0.11:80,192.168.122.200', 'remote-ssh-tunnel', 'BIND_IP "255.255.255.255" is the broadcast address'],
    ['192.168.122.200:2049:10.96.0.11:80:9,192.168.122.200', 'remote-ssh-tunnel', 'is not BIND_IP:PORT:HOST:PORT,SSH_HOST'],
  ])('rejects %j (%s)', (line, kind, reason) => {
    expect(() => parseTunnelLine(line, kind)).toThrow(reason);
  });

  it('accepts host names and user@host, as an operator may write them', () => {
    expect(parseTunnelLine('2049:db.example.com:5432,tunnel@gw-1.example.com', 'ssh-tunnel')).toEqual({ spec: '2049:db.example.com:5432', host: 'tunnel@gw-1.example.com' });
  });
});

describe('rules belong to their own address', () => {
  const dnat = (dst: string, port: number): string => `PREROUTING -t nat -m tcp -p tcp --dst ${dst} --src 192.168.122.139 --dport 80 -j DNAT --to-destination ${dst}:${port}`;
  const snat = (source: string): string => `POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2049 -j SNAT --to-source ${source}`;

  it("rejects a gateway rule for another IP than the entry's", () => {
    expect(() => parseRules(gatewayDoc('192.168.122.200', `${dnat('192.168.122.200', 2049)}\n${snat('192.168.122.201')}\n`), 'f')).toThrow(
      'f: gateway.192.168.122.200.iptables-rule line 2: the rule is for 192.168.122.201, not this gateway IP 192.168.122.200',
    );
  });

  it("rejects a forwarder rule for another address than the entry's other rules", () => {
    expect(() => parseRules(forwarderDoc({ 'iptables-rule': `${dnat('10.244.0.50', 2049)}\n${snat('10.244.0.51')}\n` }), 'f')).toThrow(
      "f: forwarder.es.iptables-rule line 2: the rule is for 10.244.0.51, not the forwarder pod's IP 10.244.0.50",
    );
  });

  it('rejects a gateway key that is not a unicast address', () => {
    expect(() => parseRules(gatewayDoc('0.0.0.0', ''), 'f')).toThrow('f: gateway.0.0.0.0: the key is unspecified (0.0.0.0/8)');
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
