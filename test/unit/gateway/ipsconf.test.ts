import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { parseIpsConf } from '../../../gateway/ipsconf.js';

describe('parseIpsConf', () => {
  it.each([
    ['one address per line', '192.168.122.200\n192.168.122.201\n', ['192.168.122.200', '192.168.122.201']],
    ['blank lines and comments', '# gateway IPs\n\n192.168.122.200  # first\n   \n', ['192.168.122.200']],
    ['no trailing newline and CRLF-free spaces', '  10.0.0.1\t', ['10.0.0.1']],
    ['a repeated address once', '10.0.0.1\n10.0.0.1\n', ['10.0.0.1']],
    ['an empty file as no addresses', '', []],
  ])('reads %s', (_title, text, expected) => {
    expect(parseIpsConf(text, 'ips.conf')).toEqual(expected);
  });

  it.each([
    ['a word', '192.168.122.200\nfoo\n', 'ips.conf: line 2: "foo" is not an IPv4 address'],
    ['an octet out of range', '192.168.122.256\n', 'ips.conf: line 1: "192.168.122.256" is not an IPv4 address'],
    ['two addresses on a line', '\n\n10.0.0.1 10.0.0.2\n', 'ips.conf: line 3: "10.0.0.1 10.0.0.2" is not an IPv4 address'],
    ['an address with a prefix', '10.0.0.1/24\n', 'ips.conf: line 1: "10.0.0.1/24" is not an IPv4 address'],
    ['the unspecified address', '0.0.0.0\n', 'ips.conf: line 1: "0.0.0.0" is unspecified (0.0.0.0/8)'],
    ['the broadcast address', '10.0.0.1\n255.255.255.255\n', 'ips.conf: line 2: "255.255.255.255" is the broadcast address'],
    ['a loopback address', '127.0.0.1\n', 'ips.conf: line 1: "127.0.0.1" is a loopback address (127.0.0.0/8)'],
    ['a multicast address', '224.0.0.1\n', 'ips.conf: line 1: "224.0.0.1" is a multicast address (224.0.0.0/4)'],
    ['a link-local address', '169.254.1.1\n', 'ips.conf: line 1: "169.254.1.1" is a link-local address (169.254.0.0/16)'],
  ])('rejects %s with the file and line number', (_title, text, message) => {
    expect(() => parseIpsConf(text, 'ips.conf')).toThrow(ConfigError);
    expect(() => parseIpsConf(text, 'ips.conf')).toThrow(message);
  });
});
