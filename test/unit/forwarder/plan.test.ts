import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseIptablesSave, parseRuleLine } from '../../../lib/iptables.js';
import { findTunnels, parsePs } from '../../../forwarder/observe.js';
import { plan, planNat, planTunnels, START_RETRY } from '../../../forwarder/plan.js';
import { parseRoutesJson } from '../../../lib/routes.js';
import type { Action } from '../../../lib/action.js';
import type { RunningTunnel, SshSettings, Tunnel } from '../../../forwarder/tunnel.js';

const fixture = (name: string): string => fs.readFileSync(path.join(import.meta.dirname, '../../fixtures/forwarder', name), 'utf8');
const ssh: SshSettings = { key: '/k', options: ['StrictHostKeyChecking=no'] };
const local = (spec: string, host: string): Tunnel => ({ kind: 'local', spec, host });
const remote = (spec: string, host: string): Tunnel => ({ kind: 'remote', spec, host });
const running = (pid: number, tunnel: Tunnel): RunningTunnel => ({ pid, ...tunnel });
const summary = (actions: Action[]): string[] =>
  actions.map((action) => (action.stops ? `kill ${action.stops.join(' ')} (${/(not desired|duplicate)/.exec(action.reason)?.[1]})` : action.argv.join(' ')));

const L1 = local('2049:192.168.122.139:8000', '192.168.122.200');
const L2 = local('2050:192.168.122.139:8000', '192.168.122.201');
const R1 = remote('192.168.122.200:2049:10.96.0.11:80', '192.168.122.200');

describe('planTunnels', () => {
  it.each<[string, Tunnel[], RunningTunnel[], string[]]>([
    ['plans nothing when exactly the desired tunnels run', [L1, R1], [running(10, L1), running(11, R1)], []],
    [
      'starts the missing tunnels with the original options, keeping the -g -f -N -L SPEC HOST tail',
      [L1, R1],
      [],
      [
        'ssh -o StrictHostKeyChecking=no -i /k -g -f -N -L 2049:192.168.122.139:8000 -- 192.168.122.200',
        'ssh -o StrictHostKeyChecking=no -i /k -f -N -R 192.168.122.200:2049:10.96.0.11:80 -- 192.168.122.200',
      ],
    ],
    ['kills a tunnel that is no longer desired', [L1], [running(10, L1), running(11, L2)], ['kill 11 (not desired)']],
    ['kills every tunnel when nothing is desired', [], [running(10, L1), running(11, R1)], ['kill 10 (not desired)', 'kill 11 (not desired)']],
    ['keeps the oldest of duplicate tunnels and kills the others', [L1], [running(30, L1), running(12, L1), running(20, L1)], ['kill 20 (duplicate)', 'kill 30 (duplicate)']],
    ['starts a duplicated desired line once', [L1, L1], [], ['ssh -o StrictHostKeyChecking=no -i /k -g -f -N -L 2049:192.168.122.139:8000 -- 192.168.122.200']],
    [
      'treats a -L and a -R tunnel with the same SPEC,HOST words as different tunnels',
      [local('a:1:b', 'h')],
      [running(5, remote('a:1:b', 'h'))],
      ['kill 5 (not desired)', 'ssh -o StrictHostKeyChecking=no -i /k -g -f -N -L a:1:b -- h'],
    ],
    [
      'restarts a tunnel whose host gained a user (identity compares the host as written on the command line)',
      [local('2049:192.168.122.139:8000', 'fwd@192.168.122.200')],
      [running(10, L1)],
      ['kill 10 (not desired)', 'ssh -o StrictHostKeyChecking=no -i /k -g -f -N -L 2049:192.168.122.139:8000 -- fwd@192.168.122.200'],
    ],
  ])('%s', (_title, desired, live, expected) => {
    expect(summary(planTunnels(desired, live, ssh))).toEqual(expected);
  });

  it.each<[string, Tunnel, Tunnel]>([
    ['a longer port that contains the desired one (12049 vs 2049)', L1, local('12049:192.168.122.139:8000', '192.168.122.200')],
    ['a host that starts with the desired host (.2000 vs .200)', L1, local('2049:192.168.122.139:8000', '192.168.122.2000')],
    ['a target port that starts with the desired one (80 vs 8000)', local('2049:192.168.122.139:80', '192.168.122.200'), L1],
    ['dots that a regular expression would match anything with', L1, local('2049:192x168x122x139:8000', '192.168.122.200')],
  ])('does not mistake %s for the desired tunnel, as the original grep did', (_title, desired, confusable) => {
    expect(summary(planTunnels([desired], [running(7, confusable)], ssh))).toEqual([
      'kill 7 (not desired)',
      ['ssh -o StrictHostKeyChecking=no -i /k', desired.kind === 'local' ? '-g -f -N -L' : '-f -N -R', desired.spec, '--', desired.host].join(' '),
    ]);
  });

  it('reconciles the captured ps output against the worked example: adopts, dedupes, kills and starts', () => {
    const live = findTunnels(parsePs(fixture('ps-tunnels.txt')));
    const desired = [L1, L2, R1, remote('192.168.122.201:2049:10.96.0.12:80', '192.168.122.201'), local('2049:192.168.122.139:8000', '192.168.122.2')];
    expect(summary(planTunnels(desired, live, ssh))).toEqual([
      'kill 312 (not desired)',
      'kill 12345678 (duplicate)',
      'ssh -o StrictHostKeyChecking=no -i /k -g -f -N -L 2049:192.168.122.139:8000 -- 192.168.122.2',
    ]);
  });
});

describe('planTunnels: a start refused at once is tried again in the same cycle', () => {
  it('gives every start (and no stop) two more attempts 50 ms apart, only after a failure within a second', () => {
    const actions = planTunnels([L1, R1], [running(11, L2)], ssh);
    expect(START_RETRY).toMatchObject({ attempts: 2, delayMs: 50, ifFailedWithinMs: 1000 });
    for (const refusal of [
      'ssh: connect to host 192.168.122.201 port 22: Connection refused',
      'Connection closed by 192.168.122.201 port 22',
      'kex_exchange_identification: read: Connection reset by peer',
      'Connection to 192.168.122.201 closed by remote host.',
    ])
      expect(START_RETRY.ifErrorMatches.test(refusal)).toBe(true);
    for (const other of ['ssh: connect to host 192.168.122.201 port 22: Connection timed out', 'Permission denied (publickey).', 'Host key verification failed.'])
      expect(START_RETRY.ifErrorMatches.test(other)).toBe(false);
    expect(actions.map((action) => [action.stops ? 'stop' : 'start', action.retry])).toEqual([
      ['stop', undefined],
      ['start', START_RETRY],
      ['start', START_RETRY],
    ]);
  });
});

describe('planNat', () => {
  const desired = [
    'PREROUTING -t nat -m tcp -p tcp --dst 10.244.0.50 --src 10.244.0.11 --dport 8000 -j DNAT --to-destination 10.244.0.50:2049',
    'POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2049 -j SNAT --to-source 10.244.0.50',
    'PREROUTING -t nat -m tcp -p tcp --dst 10.244.0.50 --src 10.244.0.12 --dport 8000 -j DNAT --to-destination 10.244.0.50:2050',
    'POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2050 -j SNAT --to-source 10.244.0.50',
  ].map(parseRuleLine);
  const live = parseIptablesSave(fixture('iptables-save-nat.txt'));
  const empty = { rules: [], chains: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'] };

  it('plans nothing when iptables-save shows the desired rules in its own canonical form', () => {
    expect(planNat(desired, live)).toEqual([]);
  });

  it.each([
    ['the table is empty', desired, empty],
    ['a rule is missing', desired, { ...live, rules: live.rules.slice(1) }],
    ['an extra rule is live', desired, { ...live, rules: [...live.rules, live.rules[0]!] }],
    ['the rules of a chain are in another order', [desired[2]!, desired[0]!, desired[1]!, desired[3]!], live],
    ['an extra chain is live', desired, { ...live, chains: [...live.chains, 'KUBE-LEFTOVER'] }],
  ])('replaces the whole table in one iptables-restore when %s', (_title, wanted, table) => {
    const actions = planNat(wanted, table);
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({ argv: ['iptables-restore'] });
    expect(actions[0]?.input).toBe(
      [
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':POSTROUTING ACCEPT [0:0]',
        ...wanted.map((rule) => ['-A', rule.chain, ...rule.args].join(' ')),
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('empties a table that holds rules when no rules are desired', () => {
    const actions = planNat([], live);
    expect(actions[0]?.input).toBe(
      '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n',
    );
  });

  it('plans nothing for an empty table when no rules are desired', () => {
    expect(planNat([], empty)).toEqual([]);
  });
});

describe('plan: quickack on the pod routes', () => {
  const podRoutes = parseRoutesJson(fixture('ip-route-show-table-all.json'));
  const tunedRoutes = parseRoutesJson(fixture('ip-route-show-table-all-quickack.json'));
  const nat = { rules: [], chains: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'] };
  const desired = { tunnels: [L1], rules: [], hasEntry: true };

  it("adds quickack to the pod's routes, in one ip -batch, before the tunnels are started", () => {
    const actions = plan(desired, { tunnels: [running(9, L2)], nat, routes: { tuned: true, routes: podRoutes } }, ssh);
    expect(actions.map((action) => action.argv.join(' '))).toEqual([
      'kill 9',
      'ip -batch -',
      'ssh -o StrictHostKeyChecking=no -i /k -g -f -N -L 2049:192.168.122.139:8000 -- 192.168.122.200',
    ]);
    expect(actions[1]?.input).toBe(
      [
        'route change table main unicast default via 10.244.0.1 dev eth0 proto boot scope global quickack 1',
        'route change table main unicast 10.244.0.0/24 dev eth0 proto kernel scope link src 10.244.0.50 quickack 1',
        'route change table local local 10.244.0.50 dev eth0 proto kernel scope host src 10.244.0.50 quickack 1',
        'route change table local local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
        'route change table local local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
        '',
      ].join('\n'),
    );
  });

  it('plans nothing on the next cycle, once the routes have quickack', () => {
    expect(plan(desired, { tunnels: [running(9, L1)], nat, routes: { tuned: true, routes: tunedRoutes } }, ssh)).toEqual([]);
  });

  it("never touches the routes when they are not tuned (the host's network namespace, or QUICKACK=off)", () => {
    expect(plan(desired, { tunnels: [running(9, L1)], nat, routes: { tuned: false, why: "this is the host's network namespace" } }, ssh)).toEqual([]);
  });
});

describe('plan: the nat table alongside the tunnel starts', () => {
  it('replaces the nat table in parallel with the starts, not after them', () => {
    const rule = parseRuleLine('PREROUTING -t nat -m tcp -p tcp --dst 10.244.0.50 --src 10.244.0.11 --dport 8000 -j DNAT --to-destination 10.244.0.50:2049');
    const actions = plan(
      { tunnels: [L1, R1], rules: [rule], hasEntry: true },
      { tunnels: [], nat: { rules: [], chains: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'] }, routes: { tuned: false, why: 'QUICKACK=off' } },
      ssh,
    );
    expect(actions.map((action) => [action.argv[0], action.parallel === true])).toEqual([
      ['ssh', true],
      ['ssh', true],
      ['iptables-restore', true],
    ]);
  });
});
