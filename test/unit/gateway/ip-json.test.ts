import { describe, expect, it } from 'vitest';
import { parseIptablesSave } from '../../../lib/iptables.js';
import { startedWithConfig, parseLinks, parseNetnsList } from '../../../gateway/ip-json.js';
import { fixture } from './fixtures.js';

describe('ip -json readers', () => {
  it('reads the links of a namespace with their kind, mode, state and IPv4 addresses', () => {
    const links = parseLinks(fixture('ip-address-show.json'));
    expect(links.find((link) => link.name === 'macvlanc0a87ac8')).toEqual({
      name: 'macvlanc0a87ac8',
      up: true,
      kind: 'macvlan',
      mode: 'bridge',
      addresses: [{ local: '192.168.122.200', prefixlen: 24 }],
    });
    expect(links.find((link) => link.name === 'lo')).toMatchObject({ up: true, kind: undefined, addresses: [{ local: '127.0.0.1', prefixlen: 8 }] });
  });

  it('reads a link that is down', () => {
    expect(parseLinks('[{"ifname":"lo","flags":["LOOPBACK"],"addr_info":[]}]')).toEqual([{ name: 'lo', up: false, kind: undefined, mode: undefined, addresses: [] }]);
  });

  it('reads the namespace list, also when ip prints nothing', () => {
    expect(parseNetnsList(fixture('ip-netns-list.json'))).toEqual(['k8xgwfx']);
    expect(parseNetnsList('')).toEqual([]);
  });

  it('reads the nat rules as iptables-save prints them', () => {
    expect(parseIptablesSave(fixture('iptables-save-nat.txt')).rules).toHaveLength(2);
  });
});

describe('startedWithConfig', () => {
  it.each([
    ['the title sshd gives itself', 'sshd: /usr/sbin/sshd -f /run/sshd-c0a87ac8.conf [listener] 0 of 10-100 startups\0', true],
    ['an argv', '/usr/sbin/sshd\0-f\0/run/sshd-c0a87ac8.conf\0', true],
    ['another IP', 'sshd: /usr/sbin/sshd -f /run/sshd-c0a87ac9.conf [listener] 0 of 10-100 startups', false],
    ['a process that reused the pid', 'bash\0', false],
  ])('recognises %s', (_title, cmdline, expected) => {
    expect(startedWithConfig(cmdline, '/run/sshd-c0a87ac8.conf')).toBe(expected);
  });
});
