import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseNetmask, resolveGatewaySettings } from '../../../gateway/settings.js';

const raw: Record<string, string | undefined> = {
  netnsPrefix: 'ns',
  runDir: '/run',
  nic: 'eth0',
  netmask: '24',
  defaultGateway: '192.168.122.1',
  rulesFile: '/tmp/rules.yaml',
  sshdPath: '/usr/sbin/sshd',
  hostKeyDir: '/etc/ssh',
};

describe('gateway settings', () => {
  it.each([
    ['24', 24],
    ['32', 32],
    ['0', 0],
    ['255.255.255.0', 24],
    ['255.255.240.0', 20],
    ['255.255.255.255', 32],
  ])('reads the netmask %s as /%i', (text, bits) => {
    expect(parseNetmask(text)).toBe(bits);
  });

  it.each(['33', '255.0.255.0', 'abc'])('rejects the netmask %s naming NETMASK', (text) => {
    expect(() => parseNetmask(text)).toThrow(/NETMASK/);
  });

  it.each([
    [{ nic: undefined }, 'NIC is required to be passed as an environment variable (or --nic)'],
    [{ netmask: '' }, 'NETMASK is required'],
    [{ defaultGateway: undefined }, 'DEFAULT_GATEWAY is required'],
    [{ defaultGateway: 'router' }, 'DEFAULT_GATEWAY: "router" is not an IPv4 address'],
    [{ defaultGateway: '255.255.255.255' }, 'DEFAULT_GATEWAY: "255.255.255.255" is the broadcast address'],
    [{ sshUser: '-Jevil' }, 'SSH_USER: "-Jevil" is not a user name'],
    [{ sshdPath: 'sshd' }, 'SSHD_PATH: "sshd" must be an absolute path'],
    [{ sshUser: 'bad user' }, 'SSH_USER'],
    [{ netnsPrefix: 'a/b' }, 'NETNS_PREFIX'],
    [{ authorizedKeysFile: 'keys' }, 'AUTHORIZED_KEYS_FILE'],
    [{ interval: '0' }, 'INTERVAL'],
    [{ sshCiphers: 'aes128-gcm@openssh.com,blowfish' }, 'SSH_CIPHERS: "blowfish" is not an OpenSSH cipher'],
  ])('rejects %o with a clear message', (change, message) => {
    expect(() => resolveGatewaySettings('ips.conf', { ...raw, ...change })).toThrow(ConfigError);
    expect(() => resolveGatewaySettings('ips.conf', { ...raw, ...change })).toThrow(message);
  });

  it('keeps the defaults of the original', () => {
    const settings = resolveGatewaySettings('/etc/ips.conf', raw);
    expect(settings).toMatchObject({
      ipsConf: '/etc/ips.conf',
      placement: { netnsPrefix: 'ns', runDir: '/run' },
      network: { nic: 'eth0', prefixLength: 24, defaultGateway: '192.168.122.1' },
      rulesFile: '/tmp/rules.yaml',
      intervalMs: 10_000,
    });
  });

  it('lets the sshds accept AES-GCM and chacha20-poly1305 only, unless SSH_CIPHERS says otherwise', () => {
    expect(resolveGatewaySettings('ips.conf', raw).ciphers).toEqual(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com']);
    expect(resolveGatewaySettings('ips.conf', { ...raw, sshCiphers: 'chacha20-poly1305@openssh.com' }).ciphers).toEqual(['chacha20-poly1305@openssh.com']);
  });

  describe('failover', () => {
    const invocation = { node: '/usr/bin/node', script: '/opt/k8s-ext-connector/bin/gateway' };

    it('is off unless FAILOVER says on', () => {
      expect(resolveGatewaySettings('ips.conf', raw, invocation).vrrp).toBeUndefined();
      expect(resolveGatewaySettings('ips.conf', { ...raw, failover: 'off' }, invocation).vrrp).toBeUndefined();
    });

    it('runs keepalived itself with nopreempt, priority 100 and an advert every 0.5 s by default, and names itself as the notify command', () => {
      expect(resolveGatewaySettings('ips.conf', { ...raw, failover: 'on' }, invocation).vrrp).toEqual({
        keepalived: 'managed',
        priority: 100,
        preempt: false,
        advertIntervalS: 0.5,
        notifyCommand: ['/usr/bin/node', '/opt/k8s-ext-connector/bin/gateway', 'vrrp-notify', '/run/vrrp-state'],
      });
    });

    it('takes its settings from the flags or environment variables', () => {
      const vrrp = resolveGatewaySettings('ips.conf', { ...raw, failover: 'yes', keepalived: 'external', vrrpPriority: '200', vrrpPreempt: 'on', vrrpAdvertInterval: '0.25' }, invocation).vrrp;
      expect(vrrp).toMatchObject({ keepalived: 'external', priority: 200, preempt: true, advertIntervalS: 0.25 });
    });

    it.each([
      [{ failover: 'maybe' }, 'FAILOVER: must be on or off, not "maybe"'],
      [{ keepalived: 'systemd' }, 'KEEPALIVED: must be managed, external, not "systemd"'],
      [{ vrrpPriority: '255' }, 'VRRP_PRIORITY: must be a whole number from 1 to 254, not "255"'],
      [{ vrrpPriority: '0' }, 'VRRP_PRIORITY'],
      [{ vrrpPreempt: 'sometimes' }, 'VRRP_PREEMPT'],
      [{ vrrpAdvertInterval: '0.001' }, 'VRRP_ADVERT_INTERVAL: must be seconds from 0.05 to 40.95 in steps of 0.01, not "0.001"'],
      [{ vrrpAdvertInterval: '60' }, 'VRRP_ADVERT_INTERVAL'],
    ])('rejects %o with a clear message', (change, message) => {
      expect(() => resolveGatewaySettings('ips.conf', { ...raw, failover: 'on', ...change }, invocation)).toThrow(ConfigError);
      expect(() => resolveGatewaySettings('ips.conf', { ...raw, failover: 'on', ...change }, invocation)).toThrow(message);
    });

    it('refuses a program path keepalived could not run as its notify command', () => {
      expect(() => resolveGatewaySettings('ips.conf', { ...raw, failover: 'on' }, { node: '/usr/bin/node', script: '/home/me/my gateway/bin/gateway' })).toThrow(
        'FAILOVER: keepalived cannot run "/home/me/my gateway/bin/gateway" as its notify command: the path must not contain whitespace or quotes',
      );
    });
  });
});
