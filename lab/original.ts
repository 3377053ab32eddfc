import { ipToHex } from '../lib/ipv4.js';
import { blockLines, parseRules } from '../lib/rules.js';
import { performance } from 'node:perf_hooks';
import type { Lab } from './netns.js';
import { ADDRESSES, type Topology } from './topology.js';

/**
 * The original's path in the lab, built with the original's own commands, for the bench to
 * measure beside this product's in the same run: per gateway IP a namespace with a macvlan, an
 * sshd with OpenSSH's defaults (plus `GatewayPorts clientspecified`, which the original's README
 * asks for) and its nat rules loaded by `iptables -t nat -F` and one `iptables -A` per rule; in
 * the forwarder pod the same nat rules and one `ssh -o StrictHostKeyChecking=no -i KEY -g -f -N
 * -L SPEC HOST` (or `-f -N -R`) per tunnel line. No route or socket is tuned.
 *
 * The only word added to the original's ssh command is `-o UserKnownHostsFile=/dev/null`, so
 * that the lab's throw-away host keys never reach root's known_hosts; it changes nothing on the
 * wire.
 */

export interface OriginalPath {
  /** Runs the original's forwarder sync for new rules: kill and start tunnels, flush and re-add the nat rules. */
  sync(rulesText: string): Promise<{ ms: number }>;
  /** Stops every process of the path and removes its namespaces. */
  stop(): Promise<void>;
}

const originalSsh = (key: string): string[] => ['ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-i', key];

/** The original's command for one tunnel line (SPEC,HOST) of the rules. */
export function originalTunnelArgv(key: string, kind: 'ssh-tunnel' | 'remote-ssh-tunnel', line: string): string[] {
  const comma = line.lastIndexOf(',');
  const marker = kind === 'ssh-tunnel' ? ['-g', '-f', '-N', '-L'] : ['-f', '-N', '-R'];
  return [...originalSsh(key), ...marker, line.slice(0, comma), line.slice(comma + 1)];
}

/** `iptables -t nat -F`, then `iptables -A <rule words>` per line, as the original applies a table. */
export async function flushAndAdd(lab: Lab, ns: string, block: string | undefined): Promise<void> {
  await lab.exec(ns, ['iptables', '-t', 'nat', '-F']);
  for (const line of blockLines(block)) await lab.exec(ns, ['iptables', '-A', ...line.split(/\s+/)]);
}

/** The processes in `ns` whose command line contains `word`: pid and command line words. */
async function processesWith(lab: Lab, ns: string, word: string): Promise<{ pid: number; args: string[] }[]> {
  const listed = await lab.exec(undefined, ['ip', 'netns', 'pids', ns], { reject: false });
  const pids = listed.stdout.split('\n').filter(Boolean);
  if (pids.length === 0) return [];
  const ps = await lab.exec(undefined, ['ps', '-o', 'pid=,args=', '-p', pids.join(',')], { reject: false });
  return ps.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((words) => words.length > 1 && words.includes(word))
    .map(([pid, ...args]) => ({ pid: Number(pid), args }));
}

async function killAll(lab: Lab, pids: readonly number[]): Promise<void> {
  if (pids.length > 0) await lab.exec(undefined, ['kill', ...pids.map(String)], { reject: false });
}

/** The lab namespaces on the LAN forget the MACs of the gateway IPs (the next gateway's macvlans have others). */
async function forgetNeighbours(lab: Lab, topology: Topology): Promise<void> {
  for (const ns of [topology.lan, topology.external, topology.node, topology.gatewayHost]) {
    await lab.exec(ns, ['ip', 'neigh', 'flush', 'all'], { reject: false });
  }
}

/**
 * The original's setup of one gateway IP on the host namespace `gatewayHost` (NIC eth0): its
 * netns (adopted by the lab for cleanup), the macvlan, lo and the device up, the address, the
 * default route and the sshd; no nat rules. `hostKey` lets several sshds share one host key, as
 * the original's sshds share the host's. Returns the netns and the sshd's pid.
 */
export async function setUpOriginalIp(lab: Lab, gatewayHost: string, ip: string, key: { publicKey: string }, hostKey?: string): Promise<{ ns: string; sshdPid: number }> {
  const hex = ipToHex(ip);
  const ns = `${lab.prefix}o${hex}`;
  const device = `macvlan${hex}`;
  await lab.exec(undefined, ['ip', 'netns', 'add', ns]);
  lab.adoptNetns(ns);
  await lab.exec(undefined, ['ip', '-n', gatewayHost, 'link', 'add', device, 'link', 'eth0', 'type', 'macvlan', 'mode', 'bridge']);
  await lab.exec(undefined, ['ip', '-n', gatewayHost, 'link', 'set', device, 'netns', ns]);
  await lab.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
  await lab.exec(ns, ['ip', 'link', 'set', device, 'up']);
  await lab.exec(ns, ['ip', 'addr', 'add', `${ip}/${ADDRESSES.netmask}`, 'dev', device]);
  await lab.exec(ns, ['ip', 'route', 'add', 'default', 'via', ADDRESSES.router]);
  const sshd = await lab.startSshd(ns, { listenAddress: ip, authorizedKeys: [key.publicKey], ...(hostKey ? { hostKey } : {}) });
  return { ns, sshdPid: sshd.pid };
}

export async function startOriginalPath(lab: Lab, topology: Topology, rulesText: string, key: { privateKey: string; publicKey: string }): Promise<OriginalPath> {
  const rules = parseRules(rulesText, 'rules');
  const gatewayNamespaces: string[] = [];
  for (const ip of ADDRESSES.sourceIPs) {
    const { ns } = await setUpOriginalIp(lab, topology.gatewayHost, ip, key);
    gatewayNamespaces.push(ns);
    await flushAndAdd(lab, ns, rules.gateway[ip]?.['iptables-rule']);
  }
  await forgetNeighbours(lab, topology);

  const pod = topology.pods.forwarder.netns;
  const tunnels = async (): Promise<{ pid: number; line: string }[]> =>
    (await processesWith(lab, pod, key.privateKey)).map(({ pid, args }) => ({ pid, line: `${args.includes('-R') ? 'R' : 'L'} ${args.slice(-2).join(',')}` }));
  // The original's forwarder sync: kill the tunnels no longer listed, start the missing ones, then flush and re-add the nat rules.
  const sync = async (text: string): Promise<{ ms: number }> => {
    const started = performance.now();
    const entry = Object.values(parseRules(text, 'rules').forwarder)[0];
    const wanted = new Map<string, string[]>();
    for (const kind of ['ssh-tunnel', 'remote-ssh-tunnel'] as const) {
      for (const line of blockLines(entry?.[kind])) wanted.set(`${kind === 'ssh-tunnel' ? 'L' : 'R'} ${line}`, originalTunnelArgv(key.privateKey, kind, line));
    }
    const running = await tunnels();
    await killAll(lab, running.filter((tunnel) => !wanted.has(tunnel.line)).map((tunnel) => tunnel.pid));
    for (const [line, argv] of wanted) if (!running.some((tunnel) => tunnel.line === line)) await lab.exec(pod, argv);
    await flushAndAdd(lab, pod, entry?.['iptables-rule']);
    return { ms: performance.now() - started };
  };
  await sync(rulesText);

  return {
    sync,
    stop: async () => {
      await killAll(lab, (await tunnels()).map((tunnel) => tunnel.pid));
      await lab.exec(pod, ['iptables', '-t', 'nat', '-F']);
      for (const ns of gatewayNamespaces) {
        const listed = await lab.exec(undefined, ['ip', 'netns', 'pids', ns], { reject: false });
        await killAll(lab, listed.stdout.split('\n').filter(Boolean).map(Number));
        await lab.exec(undefined, ['ip', 'netns', 'del', ns], { reject: false });
      }
      await forgetNeighbours(lab, topology);
    },
  };
}
