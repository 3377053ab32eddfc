import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTunnels, parsePs, tunnelKindOf } from '../../../forwarder/observe.js';

const fixture = (name: string): string => fs.readFileSync(path.join(import.meta.dirname, '../../fixtures/forwarder', name), 'utf8');

describe('parsePs', () => {
  it('reads the pid and the whitespace-separated words of each line, skipping lines without a pid', () => {
    expect(parsePs('  17 ssh -f -N -R a:1:b:2 h\nnot a pid\n\n   5    ssh   x  \n')).toEqual([
      { pid: 17, args: ['ssh', '-f', '-N', '-R', 'a:1:b:2', 'h'] },
      { pid: 5, args: ['ssh', 'x'] },
    ]);
  });

  it('returns nothing for empty output (no ssh running)', () => {
    expect(parsePs('')).toEqual([]);
  });
});

describe('tunnelKindOf', () => {
  it.each([
    [['ssh', '-g', '-f', '-N', '-L', 's', 'h'], 'local'],
    [['ssh', '-f', '-N', '-R', 's', 'h'], 'remote'],
    [['ssh', '-g', '-f', '-N', '-R', 's', 'h'], 'remote'],
    [['ssh', '-f', '-N', '-L', 's', 'h'], undefined],
    [['ssh', '-g', '-f', '-N', '-Lx', 's', 'h'], undefined],
    [['ssh', '-f', '-g', '-N', '-L', 's', 'h'], undefined],
    [['ssh', '-v', 'host'], undefined],
    [['[ssh]', '<defunct>'], undefined],
  ])('classifies %j as %s', (args, kind) => {
    expect(tunnelKindOf(args)).toBe(kind);
  });
});

describe('findTunnels', () => {
  it('identifies each tunnel by its last two words, also with odd spacing, extra options and duplicates', () => {
    expect(findTunnels(parsePs(fixture('ps-tunnels.txt')))).toEqual([
      { pid: 17, kind: 'local', spec: '2049:192.168.122.139:8000', host: '192.168.122.200' },
      { pid: 18, kind: 'remote', spec: '192.168.122.200:2049:10.96.0.11:80', host: '192.168.122.200' },
      { pid: 203, kind: 'local', spec: '2050:192.168.122.139:8000', host: '192.168.122.201' },
      { pid: 204, kind: 'remote', spec: '192.168.122.201:2049:10.96.0.12:80', host: '192.168.122.201' },
      { pid: 312, kind: 'local', spec: '12049:192.168.122.139:8000', host: '192.168.122.2000' },
      { pid: 12345678, kind: 'remote', spec: '192.168.122.200:2049:10.96.0.11:80', host: '192.168.122.200' },
    ]);
  });

  it('identifies a tunnel the same whether its options end with -- before the host (this forwarder) or not (the original)', () => {
    const ours = findTunnels(parsePs('  7 ssh -i /k -g -f -N -L 2049:10.0.0.9:80 -- 10.0.0.2\n  8 ssh -i /k -f -N -R 10.0.0.2:2049:10.96.0.1:80 -- fwd@10.0.0.2\n'));
    const original = findTunnels(parsePs('  7 ssh -i /k -g -f -N -L 2049:10.0.0.9:80 10.0.0.2\n  8 ssh -i /k -f -N -R 10.0.0.2:2049:10.96.0.1:80 fwd@10.0.0.2\n'));
    expect(ours).toEqual([
      { pid: 7, kind: 'local', spec: '2049:10.0.0.9:80', host: '10.0.0.2' },
      { pid: 8, kind: 'remote', spec: '10.0.0.2:2049:10.96.0.1:80', host: 'fwd@10.0.0.2' },
    ]);
    expect(original).toEqual(ours);
  });

  it('ignores ssh processes that are not tunnels and zombies', () => {
    expect(findTunnels(parsePs('  9 ssh -v gw\n 10 [ssh] <defunct>\n 11 ssh -N -L 1:a:2 h\n'))).toEqual([]);
  });
});
