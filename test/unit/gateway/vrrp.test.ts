import { describe, expect, it } from 'vitest';
import { namesFor } from '../../../gateway/names.js';
import { VRRP_SETTINGS } from './fixtures.js';
import { checkRouterIds, parseKeepalivedHeader, renderKeepalivedConfig, roleOf, routerIdFor, type VrrpSettings } from '../../../gateway/vrrp.js';

const names = namesFor('192.168.122.200', { netnsPrefix: 'ns', runDir: '/run' });
const settings = VRRP_SETTINGS;
/** Renders with the NIC address 192.168.122.192 as the advert source, or none (null). */
const render = (overrides: Partial<VrrpSettings> = {}, advertSource: string | null = '192.168.122.192'): string =>
  renderKeepalivedConfig({ names, prefixLength: 24, defaultGateway: '192.168.122.1', advertSource: advertSource ?? undefined, quickack: true, settings: { ...settings, ...overrides } });

describe('VRRP router ids', () => {
  it('is the last octet of the IP', () => {
    expect(routerIdFor('192.168.122.200')).toBe(200);
    expect(routerIdFor('10.0.3.1')).toBe(1);
  });

  it('accepts IPs whose last octets differ', () => {
    expect(() => checkRouterIds(['192.168.122.200', '192.168.122.201', '10.0.0.5'], 'ips.conf')).not.toThrow();
  });

  it('rejects two IPs with the same last octet, naming the file and both IPs', () => {
    expect(() => checkRouterIds(['10.0.1.5', '10.0.2.5'], '/etc/ips.conf')).toThrow(
      '/etc/ips.conf: 10.0.2.5: shares its last octet (the VRRP router id 5) with 10.0.1.5; with failover, the last octets of the IPs must differ',
    );
  });

  it('rejects an IP whose last octet is 0 (VRRP has no router id 0)', () => {
    expect(() => checkRouterIds(['10.0.1.0'], 'ips.conf')).toThrow('ips.conf: 10.0.1.0: its VRRP router id would be its last octet, 0');
  });
});

describe('renderKeepalivedConfig', () => {
  it('gives keepalived the address and the default route (with quickack) on the IP\'s macvlan, adverts on the VRRP device, nopreempt by default', () => {
    expect(render()).toBe(
      [
        '# k8s-ext-connector gateway: keepalived for 192.168.122.200 in netns nsc0a87ac8 (generated; changes are overwritten)',
        'global_defs {',
        '  script_user root',
        '  enable_script_security',
        '  dynamic_interfaces',
        '  max_auto_priority',
        '}',
        'vrrp_instance 192.168.122.200 {',
        '  state BACKUP',
        '  interface vrrpc0a87ac8',
        '  track_interface {',
        '    macvlanc0a87ac8',
        '  }',
        '  virtual_router_id 200',
        '  priority 150',
        '  version 3',
        '  advert_int 0.5',
        '  mcast_src_ip 192.168.122.192',
        '  nopreempt',
        '  virtual_ipaddress {',
        '    192.168.122.200/24 dev macvlanc0a87ac8',
        '  }',
        '  virtual_routes {',
        '    0.0.0.0/0 via 192.168.122.1 dev macvlanc0a87ac8 quickack 1',
        '  }',
        '  notify "/usr/bin/node /opt/k8s-ext-connector/bin/gateway vrrp-notify /run/vrrp-state"',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('leaves nopreempt out when preemption is on, and the advert source out when the NIC has no address', () => {
    const config = render({ preempt: true, priority: 90, advertIntervalS: 1 }, null);
    expect(config).not.toMatch(/nopreempt/);
    expect(config).not.toMatch(/mcast_src_ip/);
    expect(config).toMatch(/^ {2}priority 90$/m);
    expect(config).toMatch(/^ {2}advert_int 1$/m);
  });

  it('can be recognised by its header', () => {
    expect(parseKeepalivedHeader(render())).toEqual({ ip: '192.168.122.200', netns: 'nsc0a87ac8' });
    expect(parseKeepalivedHeader('vrrp_instance x {\n')).toBeUndefined();
  });
});

describe('roleOf', () => {
  const running = { pidFileExists: true, pid: 42, running: true, startedAtMs: 10_000 };
  it.each([
    ['down without a running keepalived', { pidFileExists: true, pid: 42, running: false }, { state: 'MASTER', priority: 150, atMs: 20_000 }, 'down'],
    ['starting before its first announcement', running, undefined, 'starting'],
    ['starting when the last announcement came from an earlier keepalived', running, { state: 'MASTER', priority: 150, atMs: 9_990 }, 'starting'],
    ['what the running keepalived announced', running, { state: 'BACKUP', priority: 150, atMs: 10_000 }, 'BACKUP'],
  ] as const)('is %s', (_title, keepalived, announced, role) => {
    expect(roleOf(keepalived, announced)).toBe(role);
  });
});
