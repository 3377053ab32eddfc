import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning } from '../../lab/netns.js';
import { serializeRules, toBlock, type RulesDocument } from '../../lib/rules.js';
import { ROOT } from '../helpers/cli.js';
import { Lab, systemSkipReason, type LabProcess } from '../helpers/netns.js';

/**
 * The real gateway on a "host" namespace whose NIC is on a bridge "LAN", with real macvlan
 * devices, iptables, sshd and traffic:
 *
 *   LAN bridge (router 10.201.0.1) -- host eth0 10.201.0.2 (the gateway runs here)
 *                                  -- external server 10.201.0.10
 *                                  -- node 10.201.0.20 (an ssh client, as the forwarder is)
 *   gateway IPs 10.201.0.200 and .201: macvlans on the host's eth0, each in its own namespace
 *
 * The gateway's namespaces are named k8xgwns<hex>; its pid files and configs live in a run dir
 * of its own under /run, so nothing of the host's sshd or network is touched.
 */

const skipReason = systemSkipReason(['ssh', 'ssh-keygen', 'ssh-keyscan', 'iptables-save', 'iptables-restore', '/usr/sbin/sshd']);
if (skipReason) console.warn(`gateway system tests skipped: ${skipReason}`);

const ROUTER = '10.201.0.1';
const HOST = '10.201.0.2';
const EXT = '10.201.0.10';
const NODE = '10.201.0.20';
const IPS = ['10.201.0.200', '10.201.0.201'] as const;
const HEX: Record<string, string> = { '10.201.0.200': '0ac900c8', '10.201.0.201': '0ac900c9' };
const NETNS_PREFIX = 'k8xgwns';
const gatewayNetns = (ip: string): string => `${NETNS_PREFIX}${HEX[ip]}`;

function rulesFor(servicePort: number): RulesDocument {
  const rules: RulesDocument = {
    forwarder: {
      es1: {
        'iptables-rule': '',
        'remote-ssh-tunnel': toBlock(IPS.map((ip) => `${ip}:2049:10.96.0.11:80,${ip}`)),
        'ssh-tunnel': toBlock(IPS.map((ip, index) => `${2049 + index}:${EXT}:8000,${ip}`)),
      },
    },
    gateway: {},
  };
  for (const ip of IPS) {
    rules.gateway[ip] = {
      'iptables-rule': toBlock([
        `PREROUTING -t nat -m tcp -p tcp --dst ${ip} --src ${EXT} --dport ${servicePort} -j DNAT --to-destination ${ip}:2049`,
        `POSTROUTING -t nat -m tcp -p tcp --dst ${EXT} --dport 2049 -j SNAT --to-source ${ip}`,
      ]),
    };
  }
  return rules;
}

describe.skipIf(skipReason !== undefined)('gateway on a host namespace with a LAN, real macvlans, iptables and sshd', () => {
  const lab = new Lab('k8xgw');
  let ns: Record<'lan' | 'host' | 'ext' | 'node', string>;
  let runDir: string;
  let ipsConf: string;
  let rulesFile: string;
  let env: NodeJS.ProcessEnv;
  let gateway: LabProcess;
  let key: string;
  let hostRoutesBefore: string;

  function writeAtomically(file: string, text: string): void {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  }

  function pidFile(ip: string): string {
    return path.join(runDir, `sshd-${HEX[ip]}.pid`);
  }

  function sshdPid(ip: string): number | undefined {
    try {
      return Number(fs.readFileSync(pidFile(ip), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  }

  /** Processes whose command line names the gateway's run dir (its sshds). */
  function sshdsOfRunDir(): number[] {
    return fs
      .readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          return isRunning(Number(pid)) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${runDir}/sshd-`);
        } catch {
          return false;
        }
      })
      .map(Number);
  }

  async function netnsList(): Promise<string[]> {
    return Lab.leftovers(NETNS_PREFIX);
  }

  /** The host key line ssh-keyscan gets from ip:22 as seen from the external server, or ''. */
  async function keyscan(ip: string): Promise<string> {
    const result = await lab.exec(ns.ext, ['ssh-keyscan', '-T', '2', '-t', 'ed25519', ip], { reject: false });
    return result.stdout.trim();
  }

  function reply(from: string, ip: string, port: number): Promise<string> {
    return lab.connect(from, ip, port, { timeoutMs: 2000 }).catch((error: Error) => error.message);
  }

  async function natOf(ip: string): Promise<string> {
    return (await lab.exec(gatewayNetns(ip), ['iptables-save', '-t', 'nat'], { reject: false })).stdout;
  }

  async function runGatewayCommand(args: string[]): Promise<{ code: number | null; output: string }> {
    const handle = lab.spawn(ns.host, [process.execPath, path.join(ROOT, 'bin/gateway'), ...args], { hostLike: true, env });
    const code = await handle.exited;
    return { code, output: handle.output() };
  }

  beforeAll(async () => {
    hostRoutesBefore = (await lab.exec(undefined, ['ip', '-4', 'route', 'show', 'table', 'all'])).stdout;
    ns = { lan: await lab.netns('lan'), host: await lab.netns('host'), ext: await lab.netns('ext'), node: await lab.netns('node') };
    for (const ip of IPS) lab.adoptNetns(gatewayNetns(ip));
    await lab.bridge(ns.lan, 'br0');
    await lab.addr(ns.lan, 'br0', `${ROUTER}/24`);
    const ports: [keyof typeof ns, string, string][] = [
      ['host', 'p-host', `${HOST}/24`],
      ['ext', 'p-ext', `${EXT}/24`],
      ['node', 'p-node', `${NODE}/24`],
    ];
    for (const [name, port, cidr] of ports) {
      await lab.veth(ns[name], 'eth0', ns.lan, port);
      await lab.master(ns.lan, port, 'br0');
      await lab.addr(ns[name], 'eth0', cidr);
    }

    runDir = fs.mkdtempSync('/run/k8xgw-');
    ipsConf = path.join(lab.tempDir, 'ips.conf');
    rulesFile = path.join(lab.tempDir, 'rules.yaml');
    const hostKeyDir = path.join(lab.tempDir, 'no-host-keys');
    fs.mkdirSync(hostKeyDir);
    fs.writeFileSync(ipsConf, `# gateway IPs of the test LAN\n${IPS.join('\n')}\n`);
    fs.writeFileSync(rulesFile, serializeRules(rulesFor(80)));
    const pair = await lab.sshKeypair();
    key = pair.privateKey;
    // In the run dir (root-owned all the way up), so that sshd's StrictModes accepts it.
    fs.writeFileSync(path.join(runDir, 'authorized_keys'), fs.readFileSync(pair.publicKey, 'utf8'), { mode: 0o600 });
    env = {
      NO_COLOR: '1',
      NIC: 'eth0',
      NETMASK: '24',
      DEFAULT_GATEWAY: ROUTER,
      NETNS_PREFIX,
      RUN_DIR: runDir,
      RULES_FILE: rulesFile,
      HOST_KEY_DIR: hostKeyDir,
      AUTHORIZED_KEYS_FILE: path.join(runDir, 'authorized_keys'),
      INTERVAL: '2',
    };
    gateway = lab.spawn(ns.host, [process.execPath, path.join(ROOT, 'bin/gateway'), ipsConf], { hostLike: true, env });
  });

  afterAll(async () => {
    await lab.stop(gateway).catch(() => undefined);
    if (runDir) await runGatewayCommand(['teardown', ipsConf]).catch(() => undefined);
    for (const pid of runDir ? sshdsOfRunDir() : []) process.kill(pid, 'SIGKILL');
    await lab.cleanup();
    if (runDir) fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('sets up each IP: its namespace, the macvlan with address and default route, and an sshd answering on it', async () => {
    for (const ip of IPS) {
      await expect.poll(() => keyscan(ip), { timeout: 20_000, interval: 200 }).toContain('ssh-ed25519');
      const links = JSON.parse((await lab.exec(gatewayNetns(ip), ['ip', '-json', '-details', 'address', 'show', 'dev', `macvlan${HEX[ip]}`])).stdout);
      expect(links[0]).toMatchObject({ flags: expect.arrayContaining(['UP']), linkinfo: { info_kind: 'macvlan', info_data: { mode: 'bridge' } } });
      expect(links[0].addr_info).toEqual(expect.arrayContaining([expect.objectContaining({ local: ip, prefixlen: 24 })]));
        expect(links[0].address).toBe(`02:6b:${HEX[ip]!.match(/../g)!.join(':')}`);
      expect((await lab.exec(gatewayNetns(ip), ['ip', 'route', 'show', 'default'])).stdout).toContain(`default via ${ROUTER} dev macvlan${HEX[ip]}`);
    }
    // No host key in the host key dir: one was generated into the run dir.
    expect(fs.existsSync(path.join(runDir, 'sshd-host-keys/ssh_host_ed25519_key'))).toBe(true);
  });

  it('DNATs the port of the rules to the listener behind each IP, where the external server is the peer', async () => {
    for (const ip of IPS) {
      // Stands for the -R tunnel's listener that the forwarder opens on ip:2049.
      const listener = await lab.peerServer(gatewayNetns(ip), ip, 2049);
      await expect.poll(() => reply(ns.ext, ip, 80), { timeout: 10_000, interval: 200 }).toBe(EXT);
      expect(listener.seen()).toContain(EXT);
      await lab.stop(listener.process);
    }
  });

  it("lets a tunnel through each IP's sshd reach only the permitted target, which then sees that IP as the source", async () => {
    const server = await lab.peerServer(ns.ext, EXT, 8000);
    await lab.peerServer(ns.ext, EXT, 8001);
    const ssh = (ip: string, forward: string) =>
      lab.spawn(ns.node, [
        'ssh', '-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
        '-o', 'ExitOnForwardFailure=yes', '-N', '-L', forward, `root@${ip}`,
      ]);
    ssh(IPS[0], `127.0.0.1:7000:${EXT}:8000`);
    ssh(IPS[1], `127.0.0.1:7001:${EXT}:8000`);
    const forbidden = ssh(IPS[0], `127.0.0.1:7002:${EXT}:8001`);
    await expect.poll(() => reply(ns.node, '127.0.0.1', 7000), { timeout: 15_000, interval: 200 }).toBe(IPS[0]);
    await expect.poll(() => reply(ns.node, '127.0.0.1', 7001), { timeout: 15_000, interval: 200 }).toBe(IPS[1]);
    expect(server.seen()).toEqual(expect.arrayContaining([IPS[0], IPS[1]]));
    // PermitOpen allows only EXT:8000: the channel to EXT:8001 is refused, the client gets nothing.
    await expect.poll(() => reply(ns.node, '127.0.0.1', 7002), { timeout: 10_000, interval: 200 }).toBe('');
    await expect.poll(() => forbidden.output(), { timeout: 5000 }).toMatch(/administratively prohibited/);
  });

  it("gives every unicast and local route of each IP's namespace quickack, and its sshd accepts only AES-GCM and chacha20-poly1305", async () => {
    for (const ip of IPS) {
      const routes = (await lab.exec(gatewayNetns(ip), ['ip', '-4', 'route', 'show', 'table', 'all'])).stdout.split('\n').filter((line) => line !== '' && !line.startsWith('broadcast '));
      expect(routes.filter((line) => !line.includes(' quickack 1'))).toEqual([]);
      expect(routes).toEqual(
        expect.arrayContaining([
          expect.stringMatching(new RegExp(`^default via ${ROUTER} dev macvlan${HEX[ip]} .*quickack 1`)),
          expect.stringMatching(new RegExp(`^10\\.201\\.0\\.0/24 dev macvlan${HEX[ip]} proto kernel scope link src ${ip} .*quickack 1`)),
          expect.stringMatching(new RegExp(`^local ${ip} dev macvlan${HEX[ip]} table local .*quickack 1`)),
          expect.stringMatching(/^local 127\.0\.0\.1 dev lo table local .*quickack 1/),
        ]),
      );
      expect(fs.readFileSync(path.join(runDir, `sshd-${HEX[ip]}.conf`), 'utf8')).toMatch(/^Ciphers aes128-gcm@openssh\.com,aes256-gcm@openssh\.com,chacha20-poly1305@openssh\.com$/m);
      const oldCipher = await lab.exec(
        ns.node,
        ['ssh', '-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'Ciphers=aes128-ctr', '-N', `root@${ip}`],
        { reject: false, timeoutMs: 10_000 },
      );
      expect(oldCipher.stderr).toMatch(/no matching cipher found/);
    }
    expect((await lab.exec(undefined, ['ip', '-4', 'route', 'show', 'table', 'all'])).stdout).toBe(hostRoutesBefore);
  });

  it('applies a changed rules file in under a second', async () => {
    const started = Date.now();
    writeAtomically(rulesFile, serializeRules(rulesFor(8080)));
    await expect.poll(async () => (await natOf(IPS[0])).includes('--dport 8080') && (await natOf(IPS[1])).includes('--dport 8080'), { timeout: 1000, interval: 25 }).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
    const listener = await lab.peerServer(gatewayNetns(IPS[1]), IPS[1], 2049);
    await expect.poll(() => reply(ns.ext, IPS[1], 8080), { timeout: 5000, interval: 200 }).toBe(EXT);
    expect(await natOf(IPS[1])).not.toContain('--dport 80 ');
    await lab.stop(listener.process);
  });

  it('restarts an sshd that was killed, although its pid file is still there', async () => {
    const killed = sshdPid(IPS[0])!;
    process.kill(killed, 'SIGKILL');
    expect(fs.existsSync(pidFile(IPS[0]))).toBe(true);
    await expect.poll(() => sshdPid(IPS[0]), { timeout: 15_000, interval: 200 }).not.toBe(killed);
    await expect.poll(() => keyscan(IPS[0]), { timeout: 10_000, interval: 200 }).toContain('ssh-ed25519');
  });

  it('tears down an IP removed from ips.conf, and sets it up again when it comes back', async () => {
    const pid = sshdPid(IPS[1])!;
    fs.writeFileSync(ipsConf, `${IPS[0]}\n`);
    await expect.poll(netnsList, { timeout: 5000, interval: 100 }).toEqual([gatewayNetns(IPS[0])]);
    expect(fs.existsSync(pidFile(IPS[1]))).toBe(false);
    expect(sshdsOfRunDir()).not.toContain(pid);
    expect(await keyscan(IPS[1])).toBe('');

    fs.writeFileSync(ipsConf, `${IPS.join('\n')}\n`);
    await expect.poll(() => keyscan(IPS[1]), { timeout: 15_000, interval: 200 }).toContain('ssh-ed25519');
    expect(await natOf(IPS[1])).toContain('--dport 8080');
  });

  it('ends the ssh sessions opened before the rules permitted a new target, so that their tunnels reconnect and work', async () => {
    const server = await lab.peerServer(ns.ext, EXT, 8002);
    const tunnel = (port: number) =>
      lab.spawn(ns.node, [
        'ssh', '-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
        '-N', '-L', `127.0.0.1:${port}:${EXT}:8002`, `root@${IPS[0]}`,
      ]);
    // The forwarder got the new rules first: its tunnel connects while the gateway still forbids EXT:8002.
    const early = tunnel(7010);
    await expect.poll(() => reply(ns.node, '127.0.0.1', 7010), { timeout: 10_000, interval: 200 }).toBe('');
    await expect.poll(() => early.output(), { timeout: 5000 }).toMatch(/administratively prohibited/);

    const rules = rulesFor(8080);
    rules.forwarder.es1!['ssh-tunnel'] += `2051:${EXT}:8002,${IPS[0]}\n`;
    writeAtomically(rulesFile, serializeRules(rules));

    // The gateway reloads its sshd and ends that session: the client exits, as the forwarder's
    // tunnel would, and its successor connects under the new config.
    await expect(Promise.race([early.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))])).resolves.not.toBe('still running');
    expect(gateway.output()).toMatch(/stopping \d+ ssh session\(s\) opened under the previous config/);
    tunnel(7011);
    await expect.poll(() => reply(ns.node, '127.0.0.1', 7011), { timeout: 10_000, interval: 200 }).toBe(IPS[0]);
    expect(server.seen()).toContain(IPS[0]);
  });

  it('stops cleanly on SIGTERM, and teardown leaves no namespace, process, pid file or address behind', async () => {
    await lab.stop(gateway);
    expect(await gateway.exited).toBe(0);
    expect(gateway.output()).toContain('stopped');

    const first = await runGatewayCommand(['teardown', ipsConf]);
    expect(first.code, first.output).toBe(0);
    expect(await netnsList()).toEqual([]);
    expect(sshdsOfRunDir()).toEqual([]);
    expect(fs.readdirSync(runDir).filter((entry) => /^sshd-.*\.(pid|conf)$/.test(entry))).toEqual([]);
    const hostAddresses = (await lab.exec(ns.host, ['ip', '-4', '-o', 'address', 'show'])).stdout;
    for (const ip of IPS) expect(hostAddresses).not.toContain(ip);
    expect((await lab.exec(ns.host, ['ip', '-o', 'link', 'show'])).stdout).not.toContain('macvlan');

    const second = await runGatewayCommand(['teardown', ipsConf]);
    expect(second.code, second.output).toBe(0);
    expect(second.output).toContain('nothing to remove');
  });
});
