import { describe, expect, it } from 'vitest';
import { natRestoreInput } from '../../../lib/iptables.js';
import { natRules } from '../../../lib/rules.js';
import type { Action } from '../../../lib/action.js';
import { isDefaultRoute, kernelRoutes, plan, planGateway, planPermitsFirst, planStaleSessions, planTeardown, selectStaleSessions, type Desired, type SessionCheck, type SessionProcess } from '../../../gateway/plan.js';
import { namesFor } from '../../../gateway/names.js';
import type { GatewayState } from '../../../gateway/observe.js';
import { desired, inPlace, IP, names, placement, rules } from './fixtures.js';

const NS = names.netns;
const DEV = names.device;
const CONF = names.configFile;
const SSHD_START = `ip netns exec ${NS} /usr/sbin/sshd -f ${CONF}`;
const RESTORE = `ip netns exec ${NS} iptables-restore`;
const DEFAULT_ROUTE = `ip -n ${NS} route replace default via 192.168.122.1 dev ${DEV} quickack 1`;
const SUBNET_ROUTE = `route change table main unicast 192.168.122.0/24 dev ${DEV} proto kernel scope link src ${IP} quickack 1`;
const LOCAL_ROUTE = `route change table local local ${IP} dev ${DEV} proto kernel scope host src ${IP} quickack 1`;
const LO_ROUTES = [
  'route change table local local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
  'route change table local local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
];
/** One `ip -batch` of route changes in the IP's namespace. */
const quickack = (...lines: string[]): string => `ip -n ${NS} -batch - <<< ${lines.join('; ')}`;
/** The namespace, its macvlan and address, made from nothing. */
const NAMESPACE_SETUP = [
  `ip netns add ${NS}`,
  `ip link add ${DEV} link eth0 address 02:6b:c0:a8:7a:c8 type macvlan mode bridge`,
  `ip link set ${DEV} netns ${NS}`,
  `ip -n ${NS} link set lo up`,
  `ip -n ${NS} link set ${DEV} up`,
  `ip -n ${NS} address add ${IP}/24 dev ${DEV}`,
];
/** Setting up a namespace from nothing, with these route commands. */
const newNamespace = (routes: string[]): string[] => [
  ...NAMESPACE_SETUP,
  ...routes,
  RESTORE,
  `write ${CONF}`,
  SSHD_START,
];
/** After the address is added: the default route and the routes the kernel makes for it, with quickack. */
const ADDRESS_ROUTES = [DEFAULT_ROUTE, quickack(SUBNET_ROUTE, LOCAL_ROUTE)];

function commands(actions: readonly Action[]): string[] {
  return actions.map((action) => {
    if (action.writesFile) return `write ${action.writesFile.path}`;
    const batch = action.argv.includes('-batch') ? ` <<< ${(action.input ?? '').trim().split('\n').join('; ')}` : '';
    return `${action.argv.join(' ')}${batch}`;
  });
}

/** The actions, then the session checks that follow the reloads once they took effect. */
function cycle(wanted: Desired, state: GatewayState): string[] {
  const planned = planGateway(wanted, state);
  return [...commands(planned.actions), ...planned.sessionChecks.map((check) => `then check the sessions since ${check.sinceMs}`)];
}

type Case = [title: string, change: (state: GatewayState, wanted: Desired) => Desired | void, expected: string[]];

const ip = (state: GatewayState) => state.ips[IP]!;
const device = (state: GatewayState) => ip(state).links.find((link) => link.name === DEV)!;

describe('plan', () => {
  it.each<Case>([
    ['plans nothing when every piece is in place', () => undefined, []],
    [
      'creates the namespace and everything in it when the namespace is missing',
      (state) => {
        state.ips[IP] = { netnsExists: false, links: [], routes: [], pids: [], nat: { rules: [], chains: [] }, sshd: { pidFileExists: false, running: false } };
      },
      newNamespace([DEFAULT_ROUTE, quickack(SUBNET_ROUTE, LOCAL_ROUTE, ...LO_ROUTES)]),
    ],
    [
      'adds the device, moves it into the namespace and configures it when it is missing',
      (state) => {
        ip(state).links = ip(state).links.filter((link) => link.name !== DEV);
        ip(state).routes = ip(state).routes.filter((route) => !isDefaultRoute(route));
      },
      [
        `ip link add ${DEV} link eth0 address 02:6b:c0:a8:7a:c8 type macvlan mode bridge`,
        `ip link set ${DEV} netns ${NS}`,
        `ip -n ${NS} link set ${DEV} up`,
        `ip -n ${NS} address add ${IP}/24 dev ${DEV}`,
        ...ADDRESS_ROUTES,
      ],
    ],
    [
      'moves a bridge-mode macvlan left in the host namespace instead of adding another',
      (state) => {
        ip(state).links = ip(state).links.filter((link) => link.name !== DEV);
        state.hostLinks.push({ name: DEV, up: false, kind: 'macvlan', mode: 'bridge', addresses: [] });
      },
      [
        `ip link set ${DEV} netns ${NS}`,
        `ip -n ${NS} link set ${DEV} up`,
        `ip -n ${NS} address add ${IP}/24 dev ${DEV}`,
        ...ADDRESS_ROUTES,
      ],
    ],
    [
      'replaces a device of that name that is not a bridge-mode macvlan',
      (state) => {
        device(state).mode = 'vepa';
      },
      [
        `ip -n ${NS} link del ${DEV}`,
        `ip link add ${DEV} link eth0 address 02:6b:c0:a8:7a:c8 type macvlan mode bridge`,
        `ip link set ${DEV} netns ${NS}`,
        `ip -n ${NS} link set ${DEV} up`,
        `ip -n ${NS} address add ${IP}/24 dev ${DEV}`,
        ...ADDRESS_ROUTES,
      ],
    ],
    [
      'brings lo up when it is down',
      (state) => {
        ip(state).links.find((link) => link.name === 'lo')!.up = false;
      },
      [`ip -n ${NS} link set lo up`, quickack(...LO_ROUTES)],
    ],
    [
      'brings the device up when it is down',
      (state) => {
        device(state).up = false;
      },
      [`ip -n ${NS} link set ${DEV} up`, quickack(SUBNET_ROUTE)],
    ],
    [
      'adds the address when it is missing (and makes sure of the route that depends on it)',
      (state) => {
        device(state).addresses = [];
      },
      [`ip -n ${NS} address add ${IP}/24 dev ${DEV}`, ...ADDRESS_ROUTES],
    ],
    [
      'replaces the address when its prefix length is wrong',
      (state) => {
        device(state).addresses = [{ local: IP, prefixlen: 16 }];
      },
      [
        `ip -n ${NS} address del ${IP}/16 dev ${DEV}`,
        `ip -n ${NS} address add ${IP}/24 dev ${DEV}`,
        ...ADDRESS_ROUTES,
      ],
    ],
    [
      'removes an address that does not belong on the device',
      (state) => {
        device(state).addresses.push({ local: '192.168.122.99', prefixlen: 24 });
      },
      [`ip -n ${NS} address del 192.168.122.99/24 dev ${DEV}`, DEFAULT_ROUTE],
    ],
    [
      'adds the default route when it is missing',
      (state) => {
        ip(state).routes = ip(state).routes.filter((route) => !isDefaultRoute(route));
      },
      [DEFAULT_ROUTE],
    ],
    [
      'gives the default route quickack when it lacks it',
      (state) => {
        ip(state).routes = ip(state).routes.map((route) => (isDefaultRoute(route) ? { ...route, metrics: {} } : route));
      },
      [DEFAULT_ROUTE],
    ],
    [
      "gives quickack to every other unicast and local route of the IP's namespace that lacks it, the table local ones included",
      (state) => {
        ip(state).routes = ip(state).routes.map((route) => (isDefaultRoute(route) ? route : { ...route, metrics: {} }));
      },
      [quickack(SUBNET_ROUTE, ...LO_ROUTES, LOCAL_ROUTE)],
    ],
    [
      'with quickack off, accepts routes without it and adds none',
      (state, wanted) => {
        ip(state).routes = ip(state).routes.map((route) => ({ ...route, metrics: {} }));
        return { ...wanted, quickack: false };
      },
      [],
    ],
    [
      'with quickack off, sets up a new namespace without quickack',
      (state, wanted) => {
        state.ips[IP] = { netnsExists: false, links: [], routes: [], pids: [], nat: { rules: [], chains: [] }, sshd: { pidFileExists: false, running: false } };
        return { ...wanted, quickack: false };
      },
      newNamespace([`ip -n ${NS} route replace default via 192.168.122.1 dev ${DEV}`]),
    ],
    [
      'replaces a default route via the wrong gateway',
      (state) => {
        ip(state).routes = ip(state).routes.map((route) => (isDefaultRoute(route) ? { ...route, gateway: '192.168.122.254' } : route));
      },
      [`ip -n ${NS} route del default via 192.168.122.254 dev ${DEV}`, DEFAULT_ROUTE],
    ],
    [
      'starts sshd when there is no pid file',
      (state) => {
        ip(state).sshd = { pidFileExists: false, running: false };
      },
      [SSHD_START],
    ],
    [
      'restarts sshd that died although its pid file is still there',
      (state) => {
        ip(state).sshd = { pidFileExists: true, pid: 4242, running: false };
      },
      [SSHD_START],
    ],
    [
      'kills an sshd whose namespace was deleted and starts it again in a new one',
      (state) => {
        state.ips[IP] = { ...ip(state), netnsExists: false, links: [], routes: [], pids: [], nat: { rules: [], chains: [] } };
      },
      [
        'kill 4242',
        ...NAMESPACE_SETUP,
        DEFAULT_ROUTE,
        quickack(SUBNET_ROUTE, LOCAL_ROUTE, ...LO_ROUTES),
        RESTORE,
        SSHD_START,
      ],
    ],
    [
      'rewrites the sshd config and reloads sshd with SIGHUP when the rules change what it must permit',
      (state, wanted) => {
        const changed = structuredClone(rules);
        changed.forwarder['my-external-service1']!['ssh-tunnel'] = '2049:192.168.122.139:9000,192.168.122.200\n';
        return { ...wanted, rules: { kind: 'ok', rules: changed } };
      },
      [`write ${CONF}`, 'kill -HUP 4242'],
    ],
    [
      'stops the sessions that connected under the previous config when the rules add a forwarding target',
      (state, wanted) => {
        Object.assign(ip(state), { configWrittenAtMs: 1000 });
        const changed = structuredClone(rules);
        changed.forwarder['my-external-service1']!['ssh-tunnel'] += '2050:192.168.122.140:5432,192.168.122.200\n';
        return { ...wanted, rules: { kind: 'ok', rules: changed } };
      },
      [`write ${CONF}`, 'kill -HUP 4242', 'then check the sessions since 1000'],
    ],
    [
      'leaves every session alone when the rules only take forwarding away',
      (state, wanted) => {
        Object.assign(ip(state), { configWrittenAtMs: 1000 });
        const changed = structuredClone(rules);
        changed.forwarder['my-external-service1']!['ssh-tunnel'] = '';
        return { ...wanted, rules: { kind: 'ok', rules: changed } };
      },
      [`write ${CONF}`, 'kill -HUP 4242'],
    ],
    [
      'writes the sshd config when it is missing and reloads the running sshd',
      (state) => {
        ip(state).config = undefined;
      },
      [`write ${CONF}`, 'kill -HUP 4242'],
    ],
    [
      'restores the whole nat table when a rule is missing',
      (state) => {
        ip(state).nat.rules = ip(state).nat.rules.slice(1);
      },
      [RESTORE],
    ],
    [
      'restores the whole nat table when it holds a rule the rules file does not',
      (state) => {
        ip(state).nat.rules = [...ip(state).nat.rules, { chain: 'PREROUTING', args: ['-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'] }];
      },
      [RESTORE],
    ],
    [
      'restores the nat table when it holds a chain the rules file does not',
      (state) => {
        ip(state).nat.chains.push('STRAY');
      },
      [RESTORE],
    ],
    [
      'leaves the nat table and the sshd permits alone while the rules file is absent',
      (state, wanted) => {
        ip(state).nat = { rules: [], chains: [] };
        return { ...wanted, rules: { kind: 'absent' } };
      },
      [],
    ],
    [
      'leaves the nat table and the sshd permits alone while the rules file is malformed',
      (state, wanted) => {
        ip(state).nat.rules = ip(state).nat.rules.slice(1);
        return { ...wanted, rules: { kind: 'invalid', reason: 'rules.yaml: invalid YAML' } };
      },
      [],
    ],
    [
      'empties the nat table of an IP that the rules file no longer mentions',
      (_state, wanted) => {
        const changed = structuredClone(rules);
        delete changed.gateway[IP];
        return { ...wanted, rules: { kind: 'ok', rules: changed } };
      },
      [RESTORE],
    ],
    [
      'tears down an IP that was set up but is no longer listed',
      (_state, wanted) => ({ ...wanted, ips: [] }),
      [`kill 4242`, `rm -f ${names.pidFile} ${CONF}`, `ip netns del ${NS}`],
    ],
    [
      'generates a host key into the run dir when the host key dir has none',
      (state) => {
        state.hostKeys = [];
      },
      [
        'mkdir -p -m 0700 /run/sshd-host-keys',
        'ssh-keygen -q -t ed25519 -N  -C k8s-ext-connector-gateway -f /run/sshd-host-keys/ssh_host_ed25519_key',
        `write ${CONF}`,
        'kill -HUP 4242',
      ],
    ],
    [
      "creates sshd's privilege separation directory when it is missing",
      (state) => {
        state.privsepDirExists = false;
      },
      ['mkdir -p -m 0755 /run/sshd'],
    ],
  ])('%s', (_title, change, expected) => {
    const state = inPlace();
    const wanted = change(state, desired()) ?? desired();
    expect(cycle(wanted, state)).toEqual(expected);
    // Applying the plan and observing again would find everything in place: no second plan.
    if (expected.length === 0) expect(plan(wanted, inPlace())).toEqual([]);
  });

  it('gives iptables-restore the whole nat table of the IP, so that it is replaced in one commit', () => {
    const state = inPlace();
    state.ips[IP]!.nat = { rules: [], chains: [] };
    const restore = plan(desired(), state).find((action) => action.argv.includes('iptables-restore'));
    expect(restore).toMatchObject({ input: natRestoreInput(natRules(rules.gateway[IP]!['iptables-rule'])) });
    expect(restore?.input).toContain('*nat\n:PREROUTING ACCEPT [0:0]');
  });

  it('applies only the rules of the IPs in its own list, whatever else the rules file holds', () => {
    const actions = plan(desired(), inPlace());
    expect(actions).toEqual([]);
    const fresh = inPlace();
    fresh.ips[IP]!.nat = { rules: [], chains: [] };
    const input = plan(desired(), fresh).map((action) => action.input ?? '').join('');
    expect(input).toContain('192.168.122.200');
    expect(input).not.toContain('192.168.122.201');
  });

  it('names a dedicated user in the sshd config when one is given', () => {
    const actions = plan(desired({ access: { sshUser: 'tunnel' } }), inPlace());
    const write = actions.find((action) => action.writesFile !== undefined);
    expect(write?.argv).toEqual(['/usr/sbin/sshd', '-t', '-f']);
    expect(write?.writesFile?.content).toMatch(/^AllowUsers tunnel$/m);
    expect(write?.writesFile?.content).toMatch(/^PermitRootLogin no$/m);
    expect(commands(actions)).toEqual([`write ${CONF}`, 'kill -HUP 4242']);
  });
});

describe('stale ssh sessions after a reload', () => {
  const check: SessionCheck = { ip: IP, netns: NS, listenerPid: 4242, pidFile: '/run/k8s-ext-connector/sshd-c0a87ac8.pid', sinceMs: 10_000 };

  /** A session: forked by the listener (4242) at `startedAtMs`. */
  const session = (pid: number, startedAtMs: number): SessionProcess => ({ pid, parentPid: 4242, startedAtMs });

  it.each<[title: string, processes: SessionProcess[], expected: number[]]>([
    ['selects the sessions that connected between the previous config and the reload', [session(5001, 10_000), session(5002, 15_000), session(5003, 20_000)], [5001, 5002, 5003]],
    ['leaves the sessions older than the previous config alone', [session(4300, 9_999), session(5002, 15_000)], [5002]],
    ['leaves the sessions that connected after the reload took effect alone', [session(5002, 15_000), session(6000, 20_001)], [5002]],
    ['never selects the listening sshd, whenever it started', [{ pid: 4242, parentPid: 1, startedAtMs: 15_000 }], []],
    ['selects the child of a session with it, whenever it started', [session(5002, 15_000), { pid: 5010, parentPid: 5002, startedAtMs: 20_500 }], [5002, 5010]],
    [
      "leaves alone the processes in the netns that the listener did not fork (this gateway's own commands)",
      [{ pid: 5100, parentPid: 777, startedAtMs: 15_000 }, { pid: 5101, parentPid: 5100, startedAtMs: 15_000 }, session(5002, 15_000)],
      [5002],
    ],
    ['selects nothing when no session connected in between', [], []],
  ])('%s', (_title, processes, expected) => {
    expect(selectStaleSessions(check, processes, 20_000)).toEqual(expected);
  });

  it('plans one stop of the stale sessions, scoped to the IP, that waits for them to exit', () => {
    const [stop, ...rest] = planStaleSessions(check, [session(5002, 15_000), session(5001, 12_000)], 20_000);
    expect(rest).toEqual([]);
    expect(stop).toMatchObject({ argv: ['kill', '5001', '5002'], stops: [5001, 5002], scope: IP });
    expect(planStaleSessions(check, [session(4300, 1)], 20_000)).toEqual([]);
  });
});

describe('planPermitsFirst', () => {
  const widened = (): Desired => {
    const changed = structuredClone(rules);
    changed.forwarder['my-external-service1']!['ssh-tunnel'] += '2050:192.168.122.140:5432,192.168.122.200\n';
    return desired({ rules: { kind: 'ok', rules: changed } });
  };
  const first = (wanted: Desired, state: GatewayState): string[] => {
    const planned = planPermitsFirst(wanted, state);
    return [...commands(planned.actions), ...planned.sessionChecks.map((check) => `then check the sessions since ${check.sinceMs}`)];
  };

  it('writes the config a running sshd needs for new rules and reloads it, with the session check', () => {
    const state = inPlace();
    Object.assign(ip(state), { configWrittenAtMs: 1000 });
    expect(first(widened(), state)).toEqual([`write ${CONF}`, 'kill -HUP 4242', 'then check the sessions since 1000']);
  });

  it('leaves the same reload nothing to do in the full cycle that follows', () => {
    const state = inPlace();
    const wanted = widened();
    const config = planPermitsFirst(wanted, state).actions[0]?.writesFile?.content;
    ip(state).config = config;
    expect(cycle(wanted, state)).toEqual([]);
  });

  it('plans nothing when the configs are in place, for an sshd that does not run, or without usable rules', () => {
    expect(first(desired(), inPlace())).toEqual([]);
    const stopped = inPlace();
    ip(stopped).sshd = { pidFileExists: true, pid: 4242, running: false };
    expect(first(widened(), stopped)).toEqual([]);
    expect(first({ ...widened(), rules: { kind: 'absent' } }, inPlace())).toEqual([]);
  });
});

describe('planTeardown', () => {
  it('removes the sshd, its files, the namespace and a device left on the host', () => {
    const state = inPlace();
    state.hostLinks.push({ name: DEV, up: false, kind: 'macvlan', mode: 'bridge', addresses: [] });
    expect(commands(planTeardown([IP], state, placement))).toEqual([
      'kill 4242',
      `rm -f ${names.pidFile} ${CONF}`,
      `ip netns del ${NS}`,
      `ip link del ${DEV}`,
    ]);
  });

  it('stops the per-connection sshds in the namespace too, so that deleting it frees the device and the IP', () => {
    const state = inPlace();
    state.ips[IP]!.pids = [4242, 4300, 4301];
    const [stop] = planTeardown([IP], state, placement);
    expect(stop).toMatchObject({ argv: ['kill', '4242', '4300', '4301'], stops: [4242, 4300, 4301] });
    expect(stop?.reason).toBe('teardown: stopping sshd and 2 other process(es) in its namespace');
  });

  it('removes only a stale pid file when the sshd is already gone', () => {
    const state = inPlace();
    state.ips[IP] = { netnsExists: false, links: [], routes: [], pids: [], nat: { rules: [], chains: [] }, sshd: { pidFileExists: true, pid: 4242, running: false } };
    expect(commands(planTeardown([IP], state, placement))).toEqual([`rm -f ${names.pidFile}`]);
  });

  it('plans nothing when nothing is left', () => {
    const state = inPlace();
    state.ips[IP] = { netnsExists: false, links: [], routes: [], pids: [], nat: { rules: [], chains: [] }, sshd: { pidFileExists: false, running: false } };
    expect(planTeardown([IP], state, placement)).toEqual([]);
  });
});
describe('kernelRoutes', () => {
  it.each([
    ['192.168.122.200', 24, '192.168.122.0/24'],
    ['10.1.2.3', 8, '10.0.0.0/8'],
    ['10.1.2.3', 31, '10.1.2.2/31'],
    ['10.1.2.3', 0, '0.0.0.0/0'],
  ])('names the subnet route of %s/%i %s', (address, prefixLength, subnet) => {
    const made = kernelRoutes(namesFor(address, placement), prefixLength, { loUp: false, deviceUp: false, addressAdded: true });
    expect(made.map((route) => `${route.table} ${route.dst}`)).toEqual([`main ${subnet}`, `local ${address}`]);
  });

  it('makes no subnet route for a /32 address', () => {
    expect(kernelRoutes(names, 32, { loUp: false, deviceUp: true, addressAdded: true }).map((route) => route.dst)).toEqual([IP]);
  });
});
