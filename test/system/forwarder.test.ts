import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { forwarderData, writeConfigMap } from '../helpers/forwarder-lab.js';
import { Lab, systemSkipReason, type LabProcess } from '../helpers/netns.js';
import { findTunnels, parsePs } from '../../forwarder/observe.js';
import { tunnelLine } from '../../forwarder/tunnel.js';

/**
 * A real forwarder in a "pod" network namespace with its own PID namespace, real ssh tunnels to
 * a real sshd on a "gateway" address, and real traffic:
 *
 *   app 10.202.0.11 --(DNAT in the pod)--> pod 10.202.0.10:2049 --(ssh -L)--> gateway 10.202.0.200
 *     --> external server 10.202.0.100:8000, which sees 10.202.0.200
 *   external server --> gateway 10.202.0.200:2049 --(ssh -R)--> pod --> app 10.202.0.11:9000
 *
 * All four namespaces hang off one bridge in a namespace of their own.
 */

const skipReason = systemSkipReason(['ssh', 'ssh-keygen', 'ps', 'iptables-save', 'iptables-restore', '/usr/sbin/sshd']);
if (skipReason) console.warn(`forwarder system tests skipped: ${skipReason}`);

const POD = '10.202.0.10';
const APP = '10.202.0.11';
const EXT = '10.202.0.100';
const GW = '10.202.0.200';
const NAME = 'es1';
const L1 = `2049:${EXT}:8000,${GW}`;
const L2 = `2050:${EXT}:8000,${GW}`;
const L3 = `2051:${EXT}:8000,${GW}`;
const R1 = `${GW}:2049:${APP}:9000,${GW}`;
const RULES = [
  `PREROUTING -t nat -m tcp -p tcp --dst ${POD} --src ${APP} --dport 8000 -j DNAT --to-destination ${POD}:2049`,
  `POSTROUTING -t nat -m tcp -p tcp --dst ${EXT} --dport 2049 -j SNAT --to-source ${POD}`,
];

describe.skipIf(skipReason !== undefined)('forwarder in a pod namespace with a real sshd and traffic', () => {
  const lab = new Lab('k8xfw');
  let ns: Record<'net' | 'pod' | 'app' | 'gw' | 'ext', string>;
  let key: string;
  let configDir: string;
  let forwarder: LabProcess;
  let forwarderEnv: NodeJS.ProcessEnv;
  let hostRoutesBefore: string;

  /** The tunnels this lab's forwarder runs (ps from outside its PID namespace): line -> pid. */
  async function runningTunnels(): Promise<Record<string, number>> {
    const ps = await lab.exec(undefined, ['ps', '-C', 'ssh', '-o', 'pid,args', '--no-headers'], { reject: false });
    const ours = parsePs(ps.stdout).filter((process) => process.args.includes(key));
    return Object.fromEntries(findTunnels(ours).map((tunnel) => [`${tunnel.kind} ${tunnelLine(tunnel)}`, tunnel.pid]));
  }

  /** The peer address the server saw, or the connection error. */
  function reply(from: string, ip: string, port: number): Promise<string> {
    return lab.connect(from, ip, port, { timeoutMs: 2000 }).catch((error: Error) => error.message);
  }

  async function natRules(): Promise<string> {
    return (await lab.exec(ns.pod, ['iptables-save', '-t', 'nat'])).stdout
      .split('\n')
      .filter((line) => line.startsWith('-A'))
      .join('\n');
  }

  /** The forwarder's own pid (outside its PID namespace): the only child of `unshare --fork`. */
  function forwarderPid(): number {
    const launcher = forwarder.child.pid as number;
    const children = fs.readFileSync(`/proc/${launcher}/task/${launcher}/children`, 'utf8').trim().split(/\s+/).map(Number);
    if (children.length !== 1 || !children[0]) throw new Error(`expected one child of unshare, found ${children.join(' ')}`);
    return children[0];
  }

  /** Whether a TCP socket listens on `port` in the pod (read from /proc, no program started). */
  function podListens(port: number): boolean {
    const table = fs.readFileSync(`/proc/${forwarderPid()}/net/tcp`, 'utf8');
    const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    return table.split('\n').some((line) => {
      const [, address, , state] = line.trim().split(/\s+/);
      return address?.endsWith(local) === true && state === '0A';
    });
  }

  async function hostRoutes(): Promise<string> {
    return (await lab.exec(undefined, ['ip', '-4', 'route', 'show', 'table', 'all'])).stdout;
  }

  function publish(entry: Parameters<typeof forwarderData>[1]): void {
    writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, entry) });
  }

  beforeAll(async () => {
    hostRoutesBefore = await hostRoutes();
    ns = {
      net: await lab.netns('net'),
      pod: await lab.netns('pod'),
      app: await lab.netns('app'),
      gw: await lab.netns('gw'),
      ext: await lab.netns('ext'),
    };
    await lab.bridge(ns.net, 'br0');
    for (const [name, ip] of [['pod', POD], ['app', APP], ['gw', GW], ['ext', EXT]] as const) {
      await lab.veth(ns[name], 'eth0', ns.net, `v${name}`);
      await lab.master(ns.net, `v${name}`, 'br0');
      await lab.addr(ns[name], 'eth0', `${ip}/24`);
    }
    const keys = await lab.sshKeypair();
    key = keys.privateKey;
    await lab.startSshd(ns.gw, { listenAddress: GW, authorizedKeys: [keys.publicKey] });
    await lab.peerServer(ns.ext, EXT, 8000);
    await lab.peerServer(ns.app, APP, 9000);

    configDir = path.join(lab.tempDir, 'config');
    publish({ 'ssh-tunnel': [L1, L2], 'remote-ssh-tunnel': [R1], 'iptables-rule': RULES });
    forwarderEnv = {
      PATH: `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      EXTERNAL_SERVICE_NAME: NAME,
      DATA_FILE: path.join(configDir, 'data.yaml'),
      SSH_KEY: key,
      SSH_KNOWN_HOSTS: path.join(lab.tempDir, 'known_hosts'),
      SSH_STRICT_HOST_KEY_CHECKING: 'accept-new',
      INTERVAL: '4',
      NO_COLOR: '1',
    };
    forwarder = lab.spawn(ns.pod, [path.join(ROOT, 'bin/forwarder')], { pidns: true, env: forwarderEnv });
  });

  afterEach((context) => {
    if (context.task.result?.state === 'fail') console.error(`forwarder output:\n${forwarder?.output() ?? ''}`);
  });

  afterAll(async () => {
    await lab.cleanup();
    expect(Lab.leftovers('k8xfw')).toEqual([]);
  });

  it('starts the -L and -R tunnels and loads the DNAT rules, so traffic leaves from the gateway address and comes back through the -R tunnel', async () => {
    await expect.poll(async () => Object.keys(await runningTunnels()).sort(), { timeout: 15_000 }).toEqual([`local ${L1}`, `local ${L2}`, `remote ${R1}`]);
    await expect.poll(natRules, { timeout: 5000 }).toContain(`--to-destination ${POD}:2049`);

    await expect.poll(() => reply(ns.app, POD, 8000), { timeout: 5000 }).toBe(GW);
    await expect.poll(() => reply(ns.ext, GW, 2049), { timeout: 5000 }).toBe(POD);
  });

  it("gives every unicast and local route of the pod's namespace quickack (the table local ones included), with the tunnels working", async () => {
    const podRoutes = async (): Promise<string[]> =>
      (await lab.exec(ns.pod, ['ip', '-4', 'route', 'show', 'table', 'all'])).stdout.split('\n').filter((line) => line !== '' && !/^(broadcast|multicast|anycast) /.test(line));
    await expect.poll(async () => (await podRoutes()).filter((line) => !line.includes(' quickack 1')), { timeout: 5000 }).toEqual([]);
    expect(await podRoutes()).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^10\.202\.0\.0\/24 dev eth0 proto kernel scope link src 10\.202\.0\.10 .*quickack 1/),
        expect.stringMatching(/^local 10\.202\.0\.10 dev eth0 table local .*quickack 1/),
        expect.stringMatching(/^local 127\.0\.0\.1 dev lo table local .*quickack 1/),
      ]),
    );
    // The host's routes are never touched: the forwarder ran in a namespace of its own.
    expect(await hostRoutes()).toBe(hostRoutesBefore);
    expect(await reply(ns.app, POD, 8000)).toBe(GW);
  });

  it('applies a rules change in under a second without restarting the other tunnels', async () => {
    const before = await runningTunnels();
    const started = Date.now();
    publish({ 'ssh-tunnel': [L1, L3], 'remote-ssh-tunnel': [R1], 'iptables-rule': RULES });

    // Applied = the new tunnel listens (ps alone shows an ssh that is still authenticating).
    await expect.poll(() => podListens(2051), { timeout: 1000, interval: 10 }).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await reply(ns.app, POD, 2051)).toBe(GW);
    await expect.poll(() => podListens(2050), { timeout: 1000 }).toBe(false);
    await expect.poll(async () => Object.keys(await runningTunnels()).sort(), { timeout: 1000 }).toEqual([`local ${L1}`, `local ${L3}`, `remote ${R1}`]);
    const after = await runningTunnels();
    expect(after[`local ${L1}`]).toBe(before[`local ${L1}`]);
    expect(after[`remote ${R1}`]).toBe(before[`remote ${R1}`]);
  });

  it('shows every tunnel running and the nat table in sync in status, run inside the pod', async () => {
    const status = await lab.exec(undefined, ['nsenter', '-t', String(forwarderPid()), '--pid', '--mount', '--net', '--', path.join(ROOT, 'bin/forwarder'), 'status'], {
      env: forwarderEnv,
      reject: false,
    });

    expect(status.stdout).toContain(`local  ${L1}  pid `);
    expect(status.stdout).toContain(`remote ${R1}  pid `);
    expect(status.stdout).toContain('nat table: in sync, 2 live, 2 desired');
    expect(status.exitCode).toBe(0);
  });

  it('restarts a tunnel that was killed', async () => {
    const before = await runningTunnels();
    const victim = before[`local ${L1}`] as number;
    process.kill(victim, 'SIGTERM');

    await expect.poll(async () => (await runningTunnels())[`local ${L1}`], { timeout: 10_000 }).toSatisfy((pid) => pid !== undefined && pid !== victim);
    // ps shows the new ssh while it still authenticates, before its forward listens.
    await expect.poll(() => reply(ns.app, POD, 8000), { timeout: 5000 }).toBe(GW);
  });

  it('changes nothing when the data file becomes malformed', async () => {
    const tunnels = await runningTunnels();
    const rules = await natRules();
    writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': ['not a tunnel'] }) });

    await expect.poll(() => forwarder.output(), { timeout: 3000 }).toMatch(/ssh-tunnel line 1.*keeping the tunnels and rules that are applied/);
    expect(await runningTunnels()).toEqual(tunnels);
    expect(await natRules()).toBe(rules);
    expect(await lab.connect(ns.app, POD, 8000)).toBe(GW);
  });

  it("reports a tunnel that cannot start with ssh's own error and keeps the others", async () => {
    const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const tunnels = await runningTunnels();
    const unreachable = `2052:${EXT}:8000,${EXT}`;
    publish({ 'ssh-tunnel': [L1, L3, unreachable], 'remote-ssh-tunnel': [R1], 'iptables-rule': RULES });

    await expect
      .poll(() => forwarder.output(), { timeout: 5000 })
      .toMatch(new RegExp(`failed: start local tunnel ${escape(unreachable)} \\(missing\\) .*error="ssh: connect to host ${escape(EXT)} port 22: Connection refused`));
    expect(await runningTunnels()).toEqual(tunnels);
    expect(await reply(ns.app, POD, 8000)).toBe(GW);
  });

  it('stops with exit 0 on SIGTERM and leaves the nat rules in place', async () => {
    const rules = await natRules();
    process.kill(forwarderPid(), 'SIGTERM');

    expect(await forwarder.exited).toBe(0);
    expect(forwarder.output()).toContain('stopped; tunnels and nat rules left in place');
    expect(await natRules()).toBe(rules);
  });
});
