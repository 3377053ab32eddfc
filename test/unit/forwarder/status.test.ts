import { describe, expect, it } from 'vitest';
import { parseRuleLine } from '../../../lib/iptables.js';
import { buildStatus, formatStatus } from '../../../forwarder/status.js';
import type { Tunnel } from '../../../forwarder/tunnel.js';
import type { Route } from '../../../lib/routes.js';

const settings = { name: 'es', dataFile: '/d/data.yaml', ssh: { key: '/k', options: [] } };
const L1: Tunnel = { kind: 'local', spec: '2049:10.0.0.9:80', host: '10.0.0.2' };
const L2: Tunnel = { kind: 'local', spec: '2050:10.0.0.9:80', host: '10.0.0.2' };
const R1: Tunnel = { kind: 'remote', spec: '10.0.0.2:2049:10.96.0.1:80', host: '10.0.0.2' };
const rule = parseRuleLine('PREROUTING -t nat -m tcp -p tcp --dst 10.1.0.5 --src 10.1.0.9 --dport 80 -j DNAT --to-destination 10.1.0.5:2049');
const liveRule = { chain: 'PREROUTING', args: ['-s', '10.1.0.9/32', '-d', '10.1.0.5/32', '-p', 'tcp', '-m', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', '10.1.0.5:2049'] };
const extraRule = { chain: 'OUTPUT', args: ['-j', 'ACCEPT'] };
const untuned = { tuned: false as const, why: 'QUICKACK=off' };
const route = (dst: string, quickack: number, notReproducible?: string): Route => ({ table: 'main', type: 'unicast', dst, dev: 'eth0', onlink: false, metrics: { quickack }, notReproducible });

describe('buildStatus', () => {
  it('is in sync when exactly the desired tunnels run and the nat table holds the desired rules', () => {
    const report = buildStatus(settings, { tunnels: [L1], rules: [rule], hasEntry: true }, { tunnels: [{ pid: 5, ...L1 }], nat: { rules: [liveRule], chains: [] }, routes: untuned });
    expect(report.inSync).toBe(true);
    expect(formatStatus(report)).toContain('nat table: in sync, 1 live, 1 desired');
  });

  it('marks missing, extra and duplicate tunnels and missing and extra rules', () => {
    const report = buildStatus(
      settings,
      { tunnels: [L1, R1], rules: [rule], hasEntry: true },
      { tunnels: [{ pid: 9, ...L1 }, { pid: 7, ...L1 }, { pid: 8, ...L2 }], nat: { rules: [extraRule], chains: [] }, routes: untuned },
    );
    expect(report.tunnels.map((status) => [status.state, status.pid])).toEqual([
      ['running', 7],
      ['extra', 8],
      ['duplicate', 9],
      ['missing', undefined],
    ]);
    expect(report.nat).toMatchObject({ inSync: false, missing: [`PREROUTING ${rule.args.join(' ')}`], extra: ['OUTPUT -j ACCEPT'] });
    const text = formatStatus(report);
    expect(text).toContain('remote 10.0.0.2:2049:10.96.0.1:80,10.0.0.2  pid -  missing (will be started)');
    expect(text).toContain('local  2050:10.0.0.9:80,10.0.0.2  pid 8  extra (will be stopped)');
    expect(text.trimEnd().endsWith('not in sync')).toBe(true);
  });

  it('shows what runs and the data file error when the data file is unusable', () => {
    const report = buildStatus(settings, { error: '/d/data.yaml: invalid YAML' }, { tunnels: [{ pid: 5, ...L1 }], nat: { rules: [liveRule], chains: [] }, routes: untuned });
    expect(report.inSync).toBe(false);
    expect(formatStatus(report)).toContain('data file: unusable, nothing will change until it is fixed: /d/data.yaml: invalid YAML');
    expect(formatStatus(report)).toContain('local  2049:10.0.0.9:80,10.0.0.2  pid 5  running');
  });

  it('is not in sync while a route of the pod lacks quickack, and names the routes it leaves alone', () => {
    const observed = (routes: Route[]) => ({ tunnels: [{ pid: 5, ...L1 }], nat: { rules: [liveRule], chains: [] }, routes: { tuned: true as const, routes } });
    const lacking = buildStatus(settings, { tunnels: [L1], rules: [rule], hasEntry: true }, observed([route('default', 1), route('10.1.0.0/24', 0), route('10.2.0.0/24', 0, 'it has metric "rtt"')]));
    expect(lacking.inSync).toBe(false);
    expect(formatStatus(lacking)).toContain('routes: quickack on 1, missing on 1 (will be added)\n  missing quickack  10.1.0.0/24 dev eth0 (table main)\n  left alone  10.2.0.0/24 dev eth0 (table main): it has metric "rtt"');
    const tuned = buildStatus(settings, { tunnels: [L1], rules: [rule], hasEntry: true }, observed([route('default', 1)]));
    expect(tuned.inSync).toBe(true);
    expect(formatStatus(tuned)).toContain('routes: quickack on 1, missing on 0');
  });

  it('says why the routes are left alone', () => {
    const report = buildStatus(settings, { tunnels: [L1], rules: [rule], hasEntry: true }, { tunnels: [{ pid: 5, ...L1 }], nat: { rules: [liveRule], chains: [] }, routes: untuned });
    expect(report.inSync).toBe(true);
    expect(formatStatus(report)).toContain('routes: left alone (QUICKACK=off)');
  });
});
