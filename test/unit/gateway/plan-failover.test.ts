import { describe, expect, it } from 'vitest';
import type { Action } from '../../../lib/action.js';
import type { GatewayState, IpState } from '../../../gateway/observe.js';
import { keepalivedConfigFor, plan, planGateway, planTeardown, type Desired } from '../../../gateway/plan.js';
import type { VrrpSettings } from '../../../gateway/vrrp.js';
import { desired as baseDesired, inPlace, inPlaceIp, IP, names, placement, VRRP_SETTINGS } from './fixtures.js';

/**
 * The plan with failover: keepalived, one per IP in the IP's namespace, holds the address; the
 * gateway keeps everything else ready on every node and gives up an address no running
 * keepalived vouches for.
 */

const NS = names.netns;
const DEV = names.device;
const VRRP_DEV = names.vrrpDevice;
const VRRP = VRRP_SETTINGS;
const HOST_LINKS = [{ name: 'eth0', up: true, addresses: [{ local: '192.168.122.192', prefixlen: 24 }] }];
const KEEPALIVED_START = `ip netns exec ${NS} keepalived --vrrp -f ${names.keepalivedConfig} -p ${names.keepalivedPidFile} -r ${names.keepalivedVrrpPidFile}`;
const SYSCTL = `ip netns exec ${NS} sysctl -q -e -w net.ipv4.ip_nonlocal_bind=1 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1`;

const desired = (overrides: Partial<VrrpSettings> = {}): Desired => baseDesired({ vrrp: { ...VRRP, ...overrides } });

function commands(actions: readonly Action[]): string[] {
  return actions.map((action) => (action.writesFile ? `write ${action.writesFile.path}` : action.argv.join(' ')));
}

/** This node holds the IP: keepalived runs and announced MASTER, and the address is on the macvlan. */
function holder(): GatewayState {
  const state = inPlace();
  state.hostLinks = HOST_LINKS;
  const ip = state.ips[IP]!;
  ip.links.push({ name: VRRP_DEV, up: true, kind: 'macvlan', mode: 'bridge', addresses: [] });
  ip.sysctl = { nonlocalBind: true, ipv6Off: true };
  ip.keepalived = { pidFileExists: true, pid: 5000, running: true, startedAtMs: 1_000, vrrpPid: 5001 };
  ip.keepalivedConfig = keepalivedConfigFor(names, desired().network, HOST_LINKS, VRRP, true);
  ip.announced = { state: 'MASTER', priority: 150, atMs: 2_000 };
  ip.announcementFiles = ['/run/vrrp-state/c0a87ac8-0000000000000200-5002'];
  ip.pids = [4242, 5000, 5001, 6001];
  ip.sessions = [{ pid: 6001, startedAtMs: 3_000, parentPid: 4242 }];
  return state;
}

/** This node is the standby: the same, without the address (and so without the route), keepalived announced BACKUP. */
function standby(): GatewayState {
  const state = holder();
  const ip = state.ips[IP]!;
  ip.links.find((link) => link.name === DEV)!.addresses = [];
  // The kernel drops the device's routes with its last address.
  ip.routes = ip.routes.filter((route) => route.dev !== DEV);
  ip.announced = { state: 'BACKUP', priority: 150, atMs: 2_000 };
  ip.sessions = [];
  return state;
}

const ipOf = (state: GatewayState): IpState => state.ips[IP]!;

describe('plan with failover', () => {
  it('plans nothing on the holder or on the standby once everything is in place', () => {
    expect(plan(desired(), holder())).toEqual([]);
    expect(plan(desired(), standby())).toEqual([]);
  });

  it('sets a new namespace up without the address: sysctls first, both devices, sshd, then keepalived, which adds the address itself', () => {
    const state = inPlace();
    state.hostLinks = HOST_LINKS;
    state.ips[IP] = { netnsExists: false, links: [], routes: [], pids: [], nat: { rules: [], chains: [] }, sshd: { pidFileExists: false, running: false } };

    const actions = plan(desired(), state);

    expect(commands(actions)).toEqual([
      `ip netns add ${NS}`,
      SYSCTL,
      `ip link add ${DEV} link eth0 address 02:6b:c0:a8:7a:c8 type macvlan mode bridge`,
      `ip link set ${DEV} netns ${NS}`,
      `ip link add ${VRRP_DEV} link eth0 type macvlan mode bridge`,
      `ip link set ${VRRP_DEV} netns ${NS}`,
      `ip -n ${NS} link set lo up`,
      `ip -n ${NS} link set ${DEV} up`,
      `ip -n ${NS} link set ${VRRP_DEV} up`,
      // quickack on lo's routes; the address's routes get theirs once keepalived adds it.
      `ip -n ${NS} -batch -`,
      `ip netns exec ${NS} iptables-restore`,
      `write ${names.configFile}`,
      `ip netns exec ${NS} /usr/sbin/sshd -f ${names.configFile}`,
      `write ${names.keepalivedConfig}`,
      KEEPALIVED_START,
    ]);
    const write = actions.find((action) => action.writesFile?.path === names.keepalivedConfig);
    expect(write?.argv).toEqual(['ip', 'netns', 'exec', NS, 'keepalived', '-t', '-f']);
    expect(write?.writesFile?.content).toContain('  mcast_src_ip 192.168.122.192\n');
    expect(actions.at(-1)).toMatchObject({ daemonizes: true, waitsForPidFile: names.keepalivedPidFile, scope: IP });
  });

  it('gives up the address at once, before anything else of any IP, when keepalived no longer runs, then starts keepalived again', () => {
    const state = holder();
    ipOf(state).keepalived = { pidFileExists: true, pid: 5000, running: false };
    const other = '192.168.122.201';
    state.ips[other] = { netnsExists: false, links: [], routes: [], pids: [], nat: { rules: [], chains: [] }, sshd: { pidFileExists: false, running: false } };

    const actions = plan({ ...desired(), ips: [other, IP] }, state);

    expect(commands(actions)[0]).toBe(`ip -n ${NS} address del ${IP}/24 dev ${DEV}`);
    expect(actions[0]).toMatchObject({ reason: `keepalived is not running for ${IP}: no node may hold the address unannounced`, scope: IP, parallel: true });
    expect(commands(actions).slice(-2)).toEqual([`rm -f ${names.keepalivedPidFile} ${names.keepalivedVrrpPidFile}`, KEEPALIVED_START]);
    expect(commands(actions).filter((command) => command.includes('address add') || command.includes('route replace'))).toEqual([]);
  });

  it('never adds the address or the default route: on the standby they are keepalived\'s to add', () => {
    expect(commands(plan(desired(), standby())).filter((command) => /address add|route (add|replace)/.test(command))).toEqual([]);
  });

  it('sets the sysctls again when one is off, and removes an address that is not the IP\'s even on the holder', () => {
    const state = holder();
    ipOf(state).sysctl = { nonlocalBind: true, ipv6Off: false };
    ipOf(state).links.find((link) => link.name === DEV)!.addresses.push({ local: '192.168.122.99', prefixlen: 24 });
    expect(commands(plan(desired(), state))).toEqual([SYSCTL, `ip -n ${NS} address del 192.168.122.99/24 dev ${DEV}`]);
  });

  it('re-creates the VRRP device when it is missing', () => {
    const state = holder();
    ipOf(state).links = ipOf(state).links.filter((link) => link.name !== VRRP_DEV);
    expect(commands(plan(desired(), state))).toEqual([
      `ip link add ${VRRP_DEV} link eth0 type macvlan mode bridge`,
      `ip link set ${VRRP_DEV} netns ${NS}`,
      `ip -n ${NS} link set ${VRRP_DEV} up`,
    ]);
  });

  it('rewrites the config and reloads keepalived with SIGHUP when a setting changes', () => {
    expect(commands(plan(desired({ priority: 90 }), holder()))).toEqual([`write ${names.keepalivedConfig}`, 'kill -HUP 5000']);
    expect(commands(plan(desired({ preempt: true }), holder()))).toEqual([`write ${names.keepalivedConfig}`, 'kill -HUP 5000']);
  });

  it('with KEEPALIVED=external writes and reloads the config but never starts keepalived', () => {
    const state = standby();
    ipOf(state).keepalived = { pidFileExists: false, running: false };
    expect(commands(plan(desired({ keepalived: 'external' }), state))).toEqual([]);
    ipOf(state).keepalivedConfig = undefined;
    expect(commands(plan(desired({ keepalived: 'external' }), state))).toEqual([`write ${names.keepalivedConfig}`]);
  });

  it.each([
    ['BACKUP', { state: 'BACKUP', priority: 150, atMs: 5_000 }],
    ['FAULT', { state: 'FAULT', priority: 150, atMs: 5_000 }],
  ] as const)('ends the ssh sessions left from when this node held the IP once keepalived reports %s', (_state, announced) => {
    const state = standby();
    ipOf(state).announced = announced;
    ipOf(state).sessions = [
      { pid: 6001, startedAtMs: 3_000, parentPid: 4242 },
      { pid: 6002, startedAtMs: 5_500, parentPid: 4242 },
    ];
    const actions = plan(desired(), state);
    expect(commands(actions)).toEqual(['kill 6001']);
    expect(actions[0]).toMatchObject({ stops: [6001], scope: IP });
  });

  it('leaves the sessions alone on the holder, and while keepalived has not announced a role since it started', () => {
    expect(plan(desired(), holder())).toEqual([]);
    const starting = standby();
    ipOf(starting).keepalived = { pidFileExists: true, pid: 5000, running: true, startedAtMs: 10_000 };
    ipOf(starting).sessions = [{ pid: 6001, startedAtMs: 3_000, parentPid: 4242 }];
    expect(plan(desired(), starting)).toEqual([]);
  });

  it('never generates a host key: every node must present the same one', () => {
    const state = holder();
    state.hostKeys = [];
    expect(commands(plan(desired(), state)).filter((command) => command.includes('ssh-keygen'))).toEqual([]);
  });

  it('stops keepalived and removes its files when failover is turned off, and adds the address and the route itself again', () => {
    const actions = plan(baseDesired(), standby());
    expect(commands(actions)).toEqual([
      `ip -n ${NS} address add ${IP}/24 dev ${DEV}`,
      `ip -n ${NS} route replace default via 192.168.122.1 dev ${DEV} quickack 1`,
      `ip -n ${NS} -batch -`,
      'kill 5000 5001',
      `rm -f ${names.keepalivedConfig} ${names.keepalivedPidFile} ${names.keepalivedVrrpPidFile}`,
    ]);
    expect(actions[3]).toMatchObject({ stops: [5000, 5001] });
  });

  it('reports no session checks: those are for reloads that widen what an sshd permits', () => {
    expect(planGateway(desired(), holder()).sessionChecks).toEqual([]);
  });
});

describe('planTeardown with failover', () => {
  it('stops keepalived with everything else in the namespace and removes its config, pid files and recorded roles', () => {
    expect(commands(planTeardown([IP], holder(), placement))).toEqual([
      'kill 4242 5000 5001 6001',
      `rm -f ${names.pidFile} ${names.configFile}`,
      `rm -f ${names.keepalivedConfig} ${names.keepalivedPidFile} ${names.keepalivedVrrpPidFile} /run/vrrp-state/c0a87ac8-0000000000000200-5002`,
      `ip netns del ${NS}`,
    ]);
  });

  it('removes nothing of keepalived on a node that never ran it', () => {
    expect(commands(planTeardown([IP], { ...inPlace(), ips: { [IP]: inPlaceIp() } }, placement))).not.toContain(expect.stringContaining('keepalived'));
  });
});
