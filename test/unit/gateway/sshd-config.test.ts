import { describe, expect, it } from 'vitest';
import { parseRules } from '../../../lib/rules.js';
import { namesFor } from '../../../gateway/names.js';
import { parseConfigHeader, permitsFor, permitsInConfig, renderSshdConfig } from '../../../gateway/sshd-config.js';
import { IP, names, rules } from './fixtures.js';

describe('permitsFor', () => {
  it('permits the -L targets and the -R binds of tunnels through this IP only', () => {
    expect(permitsFor(rules, IP)).toEqual({ open: ['192.168.122.139:8000'], listen: ['192.168.122.200:2049'] });
    expect(permitsFor(rules, '192.168.122.201')).toEqual({ open: ['192.168.122.139:8000'], listen: ['192.168.122.201:2049'] });
  });

  it('permits nothing for an IP no tunnel uses', () => {
    expect(permitsFor(rules, '192.168.122.9')).toEqual({ open: [], listen: [] });
  });

  it('lists each permit once, sorted, and accepts user@host tunnel hosts', () => {
    const document = parseRules(
      [
        '"forwarder":',
        '  "b":',
        '    "iptables-rule": ""',
        '    "remote-ssh-tunnel": ""',
        '    "ssh-tunnel": |',
        '      2050:10.0.0.9:9000,tunnel@10.0.0.1',
        '      2049:10.0.0.8:8000,10.0.0.1',
        '      2051:10.0.0.8:8000,10.0.0.1',
        '"gateway": {}',
        '',
      ].join('\n'),
      'rules.yaml',
    );
    expect(permitsFor(document, '10.0.0.1')).toEqual({ open: ['10.0.0.8:8000', '10.0.0.9:9000'], listen: [] });
  });
});

describe('renderSshdConfig', () => {
  const config = renderSshdConfig(names, { hostKeys: ['/etc/ssh/ssh_host_ed25519_key'] }, permitsFor(rules, IP));

  it.each([
    'ListenAddress 192.168.122.200',
    'PidFile /run/sshd-c0a87ac8.pid',
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'GatewayPorts clientspecified',
    'PermitTTY no',
    'ForceCommand /bin/false',
    'X11Forwarding no',
    'AllowAgentForwarding no',
    'PasswordAuthentication no',
    'PermitRootLogin prohibit-password',
    'PermitOpen 192.168.122.139:8000',
    'PermitListen 192.168.122.200:2049',
    'Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com',
  ])('holds "%s"', (line) => {
    expect(config.split('\n')).toContain(line);
  });

  it('forbids all forwarding when the rules need none', () => {
    const none = renderSshdConfig(names, { hostKeys: [] }, { open: [], listen: [] });
    expect(none).toMatch(/^PermitOpen none$/m);
    expect(none).toMatch(/^PermitListen none$/m);
  });

  it('accepts exactly the configured ciphers', () => {
    const text = renderSshdConfig(names, { hostKeys: [], ciphers: ['chacha20-poly1305@openssh.com'] }, { open: [], listen: [] });
    expect(text.split('\n').filter((line) => line.startsWith('Ciphers'))).toEqual(['Ciphers chacha20-poly1305@openssh.com']);
  });

  it('lets only the dedicated user in, with its authorized keys file', () => {
    const text = renderSshdConfig(names, { hostKeys: [], sshUser: 'tunnel', authorizedKeysFile: '/etc/k8s-ext/keys' }, { open: [], listen: [] });
    expect(text).toMatch(/^AllowUsers tunnel$/m);
    expect(text).toMatch(/^PermitRootLogin no$/m);
    expect(text).toMatch(/^AuthorizedKeysFile \/etc\/k8s-ext\/keys$/m);
  });

  it('starts with a header that says which IP and namespace it is for', () => {
    expect(parseConfigHeader(config)).toEqual({ ip: IP, netns: 'nsc0a87ac8' });
    expect(parseConfigHeader('ListenAddress 1.2.3.4\n')).toBeUndefined();
    const other = namesFor('10.201.0.200', { netnsPrefix: 'k8xgwns', runDir: '/run/x' });
    expect(parseConfigHeader(renderSshdConfig(other, { hostKeys: [] }, { open: [], listen: [] }))).toEqual({ ip: '10.201.0.200', netns: 'k8xgwns0ac900c8' });
  });

  it('reads back the permits it wrote (kept while the rules file cannot be read)', () => {
    expect(permitsInConfig(config)).toEqual(permitsFor(rules, IP));
    expect(permitsInConfig(renderSshdConfig(names, { hostKeys: [] }, { open: [], listen: [] }))).toEqual({ open: [], listen: [] });
  });
});
