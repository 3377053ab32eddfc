import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRunning } from '../../lab/netns.js';
import { readStandinLog, ROOT, runBin, standinPath, tempDir, type StandinCall } from '../helpers/cli.js';

const STANDINS = path.join(ROOT, 'test/bin/gateway');
const FIXTURES = path.join(ROOT, 'test/fixtures/gateway');
const IP1 = '192.168.122.200';
const IP2 = '192.168.122.201';

interface StandinNamespace {
  links: Record<string, { kind: string | null; mode: string | null; up: boolean; addrs: string[] }>;
  routes: { gateway?: string; dev?: string }[];
  /** quickack by "table type dst" */
  quickack?: Record<string, number>;
  nat: { chains: string[]; rules: string[] };
}

let work: { dir: string; remove: () => void };
let env: NodeJS.ProcessEnv;
let paths: { ips: string; rules: string; run: string; standin: string; log: string };

function state(): { namespaces: Record<string, StandinNamespace> } {
  return JSON.parse(fs.readFileSync(path.join(paths.standin, 'state.json'), 'utf8'));
}

function saveState(value: ReturnType<typeof state>): void {
  fs.writeFileSync(path.join(paths.standin, 'state.json'), JSON.stringify(value));
}

function pidOf(hex: string): number {
  return Number(fs.readFileSync(path.join(paths.run, `sshd-${hex}.pid`), 'utf8').trim());
}


/** The calls that change something (reads and sshd -t checks left out), as command lines. */
function changes(calls: readonly StandinCall[]): string[] {
  return calls
    .filter((call) => {
      const words = call.argv;
      if (call.program === 'iptables-save' || call.program === 'sshd-daemon' || call.program === 'keepalived-daemon') return false;
      if (call.program === 'sshd' || call.program === 'keepalived') return !words.includes('-t');
      if (call.program === 'sysctl') return words.includes('-w');
      if (call.program !== 'ip') return true;
      if (words.includes('exec')) return false; // the program it runs records itself
      return !words.some((word) => word === 'show' || word === 'list' || word === 'pids');
    })
    .map((call) => `${call.program} ${call.argv.join(' ')}`.replaceAll(paths.run, 'RUN').replace(STANDINS, 'STANDINS'));
}

/** A stand-in call; those run through `ip netns exec` say in which namespace. */
type GatewayCall = StandinCall & { netns?: string };

function newCalls(): GatewayCall[] {
  const calls: GatewayCall[] = readStandinLog(paths.log);
  fs.rmSync(paths.log, { force: true });
  return calls;
}

async function gateway(args: string[], extra: NodeJS.ProcessEnv = {}) {
  return runBin('gateway', args, { env: { ...env, ...extra } });
}

beforeEach(() => {
  work = tempDir('k8xgw-cli-');
  paths = {
    ips: path.join(work.dir, 'ips.conf'),
    rules: path.join(work.dir, 'rules.yaml'),
    run: path.join(work.dir, 'run'),
    standin: path.join(work.dir, 'standin'),
    log: path.join(work.dir, 'calls.jsonl'),
  };
  fs.mkdirSync(paths.run);
  fs.mkdirSync(paths.standin);
  fs.writeFileSync(paths.ips, `# the gateway's IPs\n${IP1}\n\n${IP2}\n`);
  fs.copyFileSync(path.join(FIXTURES, 'rules.yaml'), paths.rules);
  env = {
    PATH: standinPath(STANDINS),
    GW_STANDIN_DIR: paths.standin,
    STANDIN_LOG: paths.log,
    NIC: 'eth0',
    NETMASK: '24',
    DEFAULT_GATEWAY: '192.168.122.1',
    RUN_DIR: paths.run,
    RULES_FILE: paths.rules,
    HOST_KEY_DIR: path.join(FIXTURES, 'host-keys'),
    SSHD_PATH: path.join(STANDINS, 'sshd'),
  };
});

afterEach(() => {
  const daemons = path.join(paths.standin, 'daemons');
  if (fs.existsSync(daemons)) {
    for (const pid of fs.readFileSync(daemons, 'utf8').split('\n').filter(Boolean).map((line) => line.split(' ')[0])) {
      if (isRunning(Number(pid))) process.kill(Number(pid), 'SIGKILL');
    }
  }
  work.remove();
});

describe('gateway (CLI against stand-ins for ip, iptables-save/restore, sshd and kill)', () => {
  it('exits 2 with a clear message when NIC is not set', async () => {
    const result = await gateway(['--once', paths.ips], { NIC: '' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('NIC is required to be passed as an environment variable');
    expect(readStandinLog(paths.log)).toEqual([]);
  });

  it('exits 2 naming the file and line of a malformed ips.conf, before touching anything', async () => {
    fs.writeFileSync(paths.ips, `${IP1}\n192.168.122\n`);
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${paths.ips}: line 2: "192.168.122" is not an IPv4 address`);
    expect(changes(readStandinLog(paths.log))).toEqual([]);
  });

  it('sets up every IP on the first run and changes nothing on the second', async () => {
    const first = await gateway(['--once', paths.ips]);
    expect(first.exitCode, first.stderr).toBe(0);
    const calls = newCalls();
    expect(changes(calls)).toEqual([
      'ip netns add nsc0a87ac8',
      'ip link add macvlanc0a87ac8 link eth0 address 02:6b:c0:a8:7a:c8 type macvlan mode bridge',
      'ip link set macvlanc0a87ac8 netns nsc0a87ac8',
      'ip -n nsc0a87ac8 link set lo up',
      'ip -n nsc0a87ac8 link set macvlanc0a87ac8 up',
      'ip -n nsc0a87ac8 address add 192.168.122.200/24 dev macvlanc0a87ac8',
      'ip -n nsc0a87ac8 route replace default via 192.168.122.1 dev macvlanc0a87ac8 quickack 1',
      'ip -n nsc0a87ac8 -batch -',
      'iptables-restore ',
      'sshd -f RUN/sshd-c0a87ac8.conf',
      'ip netns add nsc0a87ac9',
      'ip link add macvlanc0a87ac9 link eth0 address 02:6b:c0:a8:7a:c9 type macvlan mode bridge',
      'ip link set macvlanc0a87ac9 netns nsc0a87ac9',
      'ip -n nsc0a87ac9 link set lo up',
      'ip -n nsc0a87ac9 link set macvlanc0a87ac9 up',
      'ip -n nsc0a87ac9 address add 192.168.122.201/24 dev macvlanc0a87ac9',
      'ip -n nsc0a87ac9 route replace default via 192.168.122.1 dev macvlanc0a87ac9 quickack 1',
      'ip -n nsc0a87ac9 -batch -',
      'iptables-restore ',
      'sshd -f RUN/sshd-c0a87ac9.conf',
    ]);
    const restore = calls.find((call) => call.program === 'iptables-restore' && call.netns === 'nsc0a87ac8');
    expect(restore?.stdin).toContain('-A PREROUTING -m tcp -p tcp --dst 192.168.122.200 --src 192.168.122.139 --dport 80 -j DNAT --to-destination 192.168.122.200:2049');
    expect(calls.find((call) => call.program === 'sshd' && !call.argv.includes('-t'))?.netns).toBe('nsc0a87ac8');
    expect(calls.find((call) => call.program === 'ip' && call.argv.includes('-batch'))?.stdin).toBe(
      [
        'route change table main unicast 192.168.122.0/24 dev macvlanc0a87ac8 proto kernel scope link src 192.168.122.200 quickack 1',
        'route change table local local 192.168.122.200 dev macvlanc0a87ac8 proto kernel scope host src 192.168.122.200 quickack 1',
        'route change table local local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
        'route change table local local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
        '',
      ].join('\n'),
    );
    expect(state().namespaces.nsc0a87ac8!.quickack).toEqual({
      'main unicast default': 1,
      'main unicast 192.168.122.0/24': 1,
      'local local 192.168.122.200': 1,
      'local local 127.0.0.0/8': 1,
      'local local 127.0.0.1': 1,
    });
    expect(isRunning(pidOf('c0a87ac8')) && isRunning(pidOf('c0a87ac9'))).toBe(true);
    expect(fs.readFileSync(path.join(paths.run, 'sshd-c0a87ac8.conf'), 'utf8')).toMatch(/^PermitListen 192\.168\.122\.200:2049$/m);

    const second = await gateway(['--once', paths.ips]);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(changes(newCalls())).toEqual([]);
  });

  it('repairs only what is missing or wrong: a lost address, a changed nat table, a dead sshd', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    newCalls();
    const broken = state();
    broken.namespaces.nsc0a87ac8!.links.macvlanc0a87ac8!.addrs = [];
    broken.namespaces.nsc0a87ac8!.nat.rules.pop();
    broken.namespaces.nsc0a87ac9!.nat.rules.push('-A PREROUTING -p tcp -m tcp --dport 22 -j ACCEPT');
    saveState(broken);
    const dead = pidOf('c0a87ac9');
    process.kill(dead, 'SIGKILL');
    await expect.poll(() => isRunning(dead)).toBe(false);

    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(changes(newCalls())).toEqual([
      'ip -n nsc0a87ac8 address add 192.168.122.200/24 dev macvlanc0a87ac8',
      'ip -n nsc0a87ac8 route replace default via 192.168.122.1 dev macvlanc0a87ac8 quickack 1',
      'ip -n nsc0a87ac8 -batch -',
      'iptables-restore ',
      'iptables-restore ',
      'sshd -f RUN/sshd-c0a87ac9.conf',
    ]);
    expect(result.stderr).toContain('sshd not running (stale pid file)');
    const repaired = state().namespaces.nsc0a87ac9!.nat.rules;
    expect(repaired).toHaveLength(2);
    expect(repaired.join('\n')).not.toContain('--dport 22');
    expect(isRunning(pidOf('c0a87ac9'))).toBe(true);
  });

  it('rewrites the sshd config and reloads sshd with SIGHUP when the rules change what it must permit', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    newCalls();
    const pid = pidOf('c0a87ac8');
    fs.writeFileSync(paths.rules, fs.readFileSync(paths.rules, 'utf8').replace('2049:192.168.122.139:8000,192.168.122.200', '2049:192.168.122.139:9000,192.168.122.200'));
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode, result.stderr).toBe(0);
    const calls = newCalls();
    expect(changes(calls)).toEqual([`kill -HUP ${pid}`]);
    expect(fs.readFileSync(path.join(paths.run, 'sshd-c0a87ac8.conf'), 'utf8')).toMatch(/^PermitOpen 192\.168\.122\.139:9000$/m);
    await expect.poll(() => [...calls, ...readStandinLog(paths.log)].some((call) => call.program === 'sshd-daemon' && call.argv[0] === 'SIGHUP')).toBe(true);
    expect(pidOf('c0a87ac8')).toBe(pid);
  });

  it('tears down an IP removed from ips.conf: sshd stopped, pid file and config removed, namespace deleted', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    newCalls();
    const pid = pidOf('c0a87ac9');
    fs.writeFileSync(paths.ips, `${IP1}\n`);
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(changes(newCalls())).toEqual([`kill ${pid}`, 'ip netns del nsc0a87ac9']);
    expect(isRunning(pid)).toBe(false);
    expect(fs.readdirSync(paths.run).sort()).toEqual(['sshd-c0a87ac8.conf', 'sshd-c0a87ac8.pid']);
    expect(Object.keys(state().namespaces).sort()).toEqual(['', 'nsc0a87ac8']);
  });

  it('keeps the applied rules and exits 2 naming the file when the rules file is malformed', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    newCalls();
    const before = state().namespaces.nsc0a87ac8!.nat;
    fs.writeFileSync(paths.rules, '"forwarder": {}\n"gateway":\n  "192.168.122.200":\n    "iptables-rule": |\n      PREROUTING -t nat -j\n');
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${paths.rules}: gateway.192.168.122.200.iptables-rule line 1`);
    expect(changes(newCalls())).toEqual([]);
    expect(state().namespaces.nsc0a87ac8!.nat).toEqual(before);
  });

  it('changes no rules while the rules file is missing, and sets up the IPs all the same', async () => {
    fs.rmSync(paths.rules);
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('no rules file yet');
    expect(changes(newCalls()).filter((call) => call.startsWith('iptables-restore'))).toEqual([]);
    expect(fs.readFileSync(path.join(paths.run, 'sshd-c0a87ac8.conf'), 'utf8')).toMatch(/^PermitListen none$/m);
  });

  it('with DEBUG=true prints the mutating commands and the restore input instead of running them', async () => {
    const result = await gateway(['--once', paths.ips], { DEBUG: 'true' });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('ip netns add nsc0a87ac8\n');
    expect(result.stdout).toContain('ip netns exec nsc0a87ac8 iptables-restore\n*nat\n:PREROUTING ACCEPT [0:0]\n');
    expect(result.stdout).toContain(`write ${paths.run}/sshd-c0a87ac8.conf\n# k8s-ext-connector gateway: sshd for 192.168.122.200`);
    expect(changes(newCalls())).toEqual([]);
    expect(fs.readdirSync(paths.run)).toEqual([]);
  });

  it('teardown removes everything setup made, and a second teardown has nothing to do and exits 0', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    const pids = [pidOf('c0a87ac8'), pidOf('c0a87ac9')];
    newCalls();
    const first = await gateway(['teardown', paths.ips]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(changes(newCalls())).toEqual([
      `kill ${pids[0]}`,
      'ip netns del nsc0a87ac8',
      `kill ${pids[1]}`,
      'ip netns del nsc0a87ac9',
    ]);
    expect(pids.map(isRunning)).toEqual([false, false]);
    expect(fs.readdirSync(paths.run)).toEqual([]);
    expect(Object.keys(state().namespaces)).toEqual(['']);

    const second = await gateway(['teardown', paths.ips]);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stderr).toContain('nothing to remove');
    expect(changes(newCalls())).toEqual([]);
  });

  it('status shows each IP and what is wrong with it, and exits 1 while anything is', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    const good = await gateway(['status', paths.ips]);
    expect(good.exitCode, good.stderr).toBe(0);
    expect(good.stdout).toContain(`${IP1}: ok`);
    expect(good.stdout).toContain('nat      2 rule(s), as in the rules file');
    process.kill(pidOf('c0a87ac8'), 'SIGKILL');
    const broken = state();
    broken.namespaces.nsc0a87ac9!.routes = [];
    saveState(broken);
    newCalls();
    await expect
      .poll(async () => {
        const bad = await gateway(['status', paths.ips]);
        return [bad.exitCode, bad.stdout.includes('WRONG: sshd not running (stale pid file)'), bad.stdout.includes('WRONG: default route via 192.168.122.1 missing')];
      })
      .toEqual([1, true, true]);
    expect(changes(newCalls())).toEqual([]);
  });

  it('keeps running: applies a changed rules file and an IP added in place within seconds, and stops cleanly on SIGTERM', async () => {
    const child = spawn(path.join(ROOT, 'bin/gateway'), [paths.ips], { env: { NO_COLOR: '1', ...env, INTERVAL: '60' }, cwd: work.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => fs.existsSync(path.join(paths.run, 'sshd-c0a87ac9.pid')), { timeout: 15_000 }).toBe(true);
      await expect.poll(() => changes(readStandinLog(paths.log)).length, { timeout: 15_000 }).toBe(20);
      // A new rules file written by rename, as the controller does.
      const next = fs.readFileSync(paths.rules, 'utf8').replace(/--dport 80 /g, '--dport 8080 ');
      fs.writeFileSync(`${paths.rules}.tmp`, next);
      fs.renameSync(`${paths.rules}.tmp`, paths.rules);
      await expect.poll(() => state().namespaces.nsc0a87ac8!.nat.rules.join('\n'), { timeout: 3000, interval: 100 }).toContain('--dport 8080');
      // ips.conf overwritten in place.
      fs.appendFileSync(paths.ips, '192.168.122.202\n');
      await expect.poll(() => fs.existsSync(path.join(paths.run, 'sshd-c0a87aca.pid')), { timeout: 5000, interval: 100 }).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
    expect(stderr).toContain('stopped');
  });
});

describe('gateway (loop): the end of each cycle in the debug log', () => {
  it('logs each cycle\'s end with changed=true when it ran actions and changed=false when everything was in place', async () => {
    const child = spawn(path.join(ROOT, 'bin/gateway'), [paths.ips], { env: { NO_COLOR: '1', ...env, INTERVAL: '60', LOG_LEVEL: 'debug' }, cwd: work.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const ends = (): string[] => [...stderr.matchAll(/ cycle (\d+) done ms=\d+ changed=(\w+)/g)].map((match) => `${match[1]} ${match[2]}`);
    try {
      await expect.poll(ends, { timeout: 15_000 }).toEqual(['1 true']);
      // The same rules again, by rename: a cycle with nothing to do.
      const same = fs.readFileSync(paths.rules, 'utf8');
      fs.writeFileSync(`${paths.rules}.tmp`, same);
      fs.renameSync(`${paths.rules}.tmp`, paths.rules);
      await expect.poll(ends, { timeout: 5000 }).toEqual(['1 true', '2 false']);
      // Changed rules: the cycle that applies them says so.
      fs.writeFileSync(`${paths.rules}.tmp`, same.replace(/--dport 80 /g, '--dport 8080 '));
      fs.renameSync(`${paths.rules}.tmp`, paths.rules);
      await expect.poll(ends, { timeout: 5000 }).toEqual(['1 true', '2 false', '3 true']);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
  });
});

describe('gateway: rules files and IP lists that are not regular files of a sane size', () => {
  it('reports a FIFO as the rules file at once and keeps the applied rules (it never waits for a writer)', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    newCalls();
    const before = state().namespaces.nsc0a87ac8!.nat;
    fs.rmSync(paths.rules);
    execFileSync('mkfifo', [paths.rules]);
    const result = await runBin('gateway', ['--once', paths.ips], { env, timeoutMs: 10_000 });
    expect(result.exitCode, result.stderr).not.toBe(0);
    expect(result.stderr).toContain(`${paths.rules}: is a FIFO, not a regular file`);
    expect(changes(newCalls())).toEqual([]);
    expect(state().namespaces.nsc0a87ac8!.nat).toEqual(before);
  });

  it('rejects a device as the rules file and one over 64 MiB unread', async () => {
    const zero = await runBin('gateway', ['--once', paths.ips], { env: { ...env, RULES_FILE: '/dev/zero' }, timeoutMs: 10_000 });
    expect(zero.stderr).toContain('/dev/zero: is a character device, not a regular file');
    fs.truncateSync(paths.rules, 64 * 1024 * 1024 + 1);
    const big = await runBin('gateway', ['--once', paths.ips], { env, timeoutMs: 10_000 });
    expect(big.stderr).toContain(`${paths.rules}: is 67108865 bytes, more than the limit of 64 MiB`);
    expect(changes(newCalls()).filter((call) => call.startsWith('iptables-restore'))).toEqual([]);
  });

  it('exits 2 naming ips.conf when it is a FIFO', async () => {
    fs.rmSync(paths.ips);
    execFileSync('mkfifo', [paths.ips]);
    const result = await runBin('gateway', ['--once', paths.ips], { env, timeoutMs: 10_000 });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${paths.ips}: is a FIFO, not a regular file`);
    expect(changes(newCalls())).toEqual([]);
  });
});

describe('gateway: truncated or degenerate rules documents', () => {
  it.each([
    ['{}', '{}\n', 'forwarder: is missing'],
    ['a file cut after "gateway":', `${fs.readFileSync(path.join(FIXTURES, 'rules.yaml'), 'utf8').split('"gateway":')[0]}"gateway":`, 'gateway: has no value (a truncated file?)'],
    ['two empty sections', '"forwarder":\n"gateway":\n', 'forwarder: has no value (a truncated file?)'],
  ])('keeps the applied nat rules when the rules file is %s', async (_title, text, reason) => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    newCalls();
    const before = state().namespaces.nsc0a87ac8!.nat;
    expect(before.rules).toHaveLength(2);
    fs.writeFileSync(paths.rules, text);
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(`${paths.rules}: ${reason}`);
    expect(changes(newCalls())).toEqual([]);
    expect(state().namespaces.nsc0a87ac8!.nat).toEqual(before);
  });
});

describe('gateway: only the rules genrule writes reach iptables-restore', () => {
  it('rejects a rule line with an option iptables-restore would accept, naming its line, and applies nothing', async () => {
    expect((await gateway(['--once', paths.ips])).exitCode).toBe(0);
    newCalls();
    const before = state().namespaces.nsc0a87ac8!.nat;
    const rules = fs.readFileSync(paths.rules, 'utf8');
    fs.writeFileSync(paths.rules, rules.replace('--to-source 192.168.122.200\n', '--to-source 192.168.122.200 --modprobe=/tmp/evil\n'));
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(`${paths.rules}: gateway.192.168.122.200.iptables-rule line 2: "--modprobe=/tmp/evil" after the end of the rule`);
    expect(changes(newCalls())).toEqual([]);
    expect(state().namespaces.nsc0a87ac8!.nat).toEqual(before);
  });

  it('exits 2 naming the line of an ips.conf address no host can own (it would become 255.255.255.255/24 on the LAN)', async () => {
    fs.writeFileSync(paths.ips, `${IP1}\n255.255.255.255\n`);
    const result = await gateway(['--once', paths.ips]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${paths.ips}: line 2: "255.255.255.255" is the broadcast address`);
    expect(changes(newCalls())).toEqual([]);
  });
});

// A failover cycle runs about twice as many stand-ins as a plain one.
describe('gateway with failover (stand-ins for keepalived and sysctl too)', { timeout: 120_000 }, () => {
  const HEX = { [IP1]: 'c0a87ac8', [IP2]: 'c0a87ac9' } as const;
  const failover = { FAILOVER: 'on', VRRP_PRIORITY: '150' };
  const gateway = (args: string[], extra: NodeJS.ProcessEnv = {}) => runBin('gateway', args, { env: { ...env, ...extra }, timeoutMs: 90_000 });

  /** The stand-in host starts with the NIC's own address: the source of the VRRP adverts. */
  beforeEach(() => {
    const lo = { kind: null, mode: null, up: true, addrs: [] };
    const eth0 = { kind: null, mode: null, up: true, addrs: ['192.168.122.192/24'] };
    saveState({ namespaces: { '': { links: { lo, eth0 }, routes: [], nat: { chains: [], rules: [] } } } });
  });

  const keepalivedPid = (hex: string): number => Number(fs.readFileSync(path.join(paths.run, `keepalived-${hex}.pid`), 'utf8').trim());
  const vrrpPid = (hex: string): number => Number(fs.readFileSync(path.join(paths.run, `keepalived-${hex}-vrrp.pid`), 'utf8').trim());
  /** keepalived's part: the address (and the route) on the macvlan of the IP, as keepalived adds them when this node becomes the holder. */
  function holdAddress(ip: string): void {
    const current = state();
    const hex = HEX[ip as keyof typeof HEX];
    current.namespaces[`ns${hex}`]!.links[`macvlan${hex}`]!.addrs = [`${ip}/24`];
    current.namespaces[`ns${hex}`]!.routes = [{ gateway: '192.168.122.1', dev: `macvlan${hex}` }];
    saveState(current);
  }
  /** What keepalived's notify command does on a transition. */
  async function announce(ip: string, role: string): Promise<void> {
    const result = await gateway(['vrrp-notify', path.join(paths.run, 'vrrp-state'), 'INSTANCE', ip, role, '150']);
    expect(result.exitCode, result.stderr).toBe(0);
  }

  it('sets up every IP without its address, with keepalived to hold it, and changes nothing on the second run', async () => {
    const first = await gateway(['--once', paths.ips], failover);
    expect(first.exitCode, first.stderr).toBe(0);
    const done = changes(newCalls());
    expect(done.slice(0, 14)).toEqual([
      'ip netns add nsc0a87ac8',
      'sysctl -q -e -w net.ipv4.ip_nonlocal_bind=1 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1',
      'ip link add macvlanc0a87ac8 link eth0 address 02:6b:c0:a8:7a:c8 type macvlan mode bridge',
      'ip link set macvlanc0a87ac8 netns nsc0a87ac8',
      'ip link add vrrpc0a87ac8 link eth0 type macvlan mode bridge',
      'ip link set vrrpc0a87ac8 netns nsc0a87ac8',
      'ip -n nsc0a87ac8 link set lo up',
      'ip -n nsc0a87ac8 link set macvlanc0a87ac8 up',
      'ip -n nsc0a87ac8 link set vrrpc0a87ac8 up',
      // quickack on lo's routes; those of the address come when keepalived has added it.
      'ip -n nsc0a87ac8 -batch -',
      'iptables-restore ',
      'sshd -f RUN/sshd-c0a87ac8.conf',
      'keepalived --vrrp -f RUN/keepalived-c0a87ac8.conf -p RUN/keepalived-c0a87ac8.pid -r RUN/keepalived-c0a87ac8-vrrp.pid',
      'ip netns add nsc0a87ac9',
    ]);
    expect(done.filter((call) => / address add | route (add|replace) /.test(call))).toEqual([]);
    const config = fs.readFileSync(path.join(paths.run, 'keepalived-c0a87ac8.conf'), 'utf8');
    expect(config).toContain('vrrp_instance 192.168.122.200 {');
    expect(config).toContain('  virtual_router_id 200\n  priority 150\n');
    expect(config).toContain('  mcast_src_ip 192.168.122.192\n  nopreempt\n');
    expect(config).toContain(`  notify "${process.execPath} ${path.join(ROOT, 'bin/gateway')} vrrp-notify ${paths.run}/vrrp-state"`);
    expect(isRunning(keepalivedPid('c0a87ac8')) && isRunning(vrrpPid('c0a87ac8')) && isRunning(keepalivedPid('c0a87ac9'))).toBe(true);
    expect(state().namespaces.nsc0a87ac8!.links.macvlanc0a87ac8!.addrs).toEqual([]);

    const second = await gateway(['--once', paths.ips], failover);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(changes(newCalls())).toEqual([]);
  });

  it('gives up an address at once when its keepalived is gone, before anything else, then starts keepalived again', async () => {
    expect((await gateway(['--once', paths.ips], failover)).exitCode).toBe(0);
    holdAddress(IP2);
    const dead = [keepalivedPid('c0a87ac9'), vrrpPid('c0a87ac9')];
    for (const pid of dead) process.kill(pid, 'SIGKILL');
    await expect.poll(() => dead.some(isRunning)).toBe(false);
    newCalls();

    const result = await gateway(['--once', paths.ips], failover);

    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain(`keepalived is not running for ${IP2}: no node may hold the address unannounced`);
    expect(changes(newCalls())).toEqual([
      'ip -n nsc0a87ac9 address del 192.168.122.201/24 dev macvlanc0a87ac9',
      'keepalived --vrrp -f RUN/keepalived-c0a87ac9.conf -p RUN/keepalived-c0a87ac9.pid -r RUN/keepalived-c0a87ac9-vrrp.pid',
    ]);
    expect(result.stderr).toContain('keepalived not running (stale pid file) ip=192.168.122.201 command="rm -f');
    expect(state().namespaces.nsc0a87ac9!.links.macvlanc0a87ac9!.addrs).toEqual([]);
    expect(isRunning(keepalivedPid('c0a87ac9'))).toBe(true);
  });

  it('status shows the role keepalived announced per IP, as text and as JSON', async () => {
    expect((await gateway(['--once', paths.ips], failover)).exitCode).toBe(0);
    await announce(IP1, 'MASTER');
    holdAddress(IP1);
    await announce(IP2, 'BACKUP');
    // The cycle that the MASTER record starts: quickack on the routes the kernel made for the address.
    newCalls();
    expect((await gateway(['--once', paths.ips], failover)).exitCode).toBe(0);
    expect(changes(newCalls()).filter((call) => call.includes('-batch'))).toEqual(['ip -n nsc0a87ac8 -batch -']);

    const text = await gateway(['status', paths.ips], failover);
    expect(text.exitCode, text.stdout).toBe(0);
    expect(text.stdout).toContain('failover    keepalived (managed), priority 150, nopreempt, advert every 0.5 s');
    expect(text.stdout).toMatch(new RegExp(`vrrp {5}MASTER: holds the address \\(router id 200, priority 150, since [^)]+\\); keepalived pid ${keepalivedPid('c0a87ac8')}`));
    expect(text.stdout).toMatch(/vrrp {5}BACKUP: standby \(router id 201, priority 150, since [^)]+\); keepalived pid \d+/);

    const json = await gateway(['status', '--json', paths.ips], failover);
    expect(json.exitCode).toBe(0);
    const status = JSON.parse(json.stdout) as { ok: boolean; ips: { ip: string; vrrp: { role: string; holder: boolean; routerId: number } }[] };
    expect(status.ok).toBe(true);
    expect(status.ips.map((entry) => [entry.ip, entry.vrrp.role, entry.vrrp.holder, entry.vrrp.routerId])).toEqual([
      [IP1, 'MASTER', true, 200],
      [IP2, 'BACKUP', false, 201],
    ]);

    // keepalived gone: no role, and the next cycle would give up the address.
    process.kill(keepalivedPid('c0a87ac8'), 'SIGKILL');
    process.kill(vrrpPid('c0a87ac8'), 'SIGKILL');
    await expect
      .poll(async () => {
        const down = await gateway(['status', paths.ips], failover);
        return [down.exitCode, down.stdout.includes('vrrp     keepalived not running (router id 200)'), down.stdout.includes(`WRONG: keepalived is not running for ${IP1}`)];
      })
      .toEqual([1, true, true]);
  });

  it('with KEEPALIVED=external writes the configs but starts no keepalived, and status says it is not running', async () => {
    const external = { ...failover, KEEPALIVED: 'external' };
    const result = await gateway(['--once', paths.ips], external);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(changes(newCalls()).filter((call) => call.startsWith('keepalived'))).toEqual([]);
    expect(fs.existsSync(path.join(paths.run, 'keepalived-c0a87ac8.conf'))).toBe(true);
    const status = await gateway(['status', paths.ips], external);
    expect(status.exitCode).toBe(1);
    expect(status.stdout).toContain('WRONG: keepalived not running (KEEPALIVED=external: its service should run it)');
  });

  it('keepalived-config prints the config of each IP as it would write it', async () => {
    const result = await gateway(['keepalived-config', paths.ips], { VRRP_PRIORITY: '120', VRRP_PREEMPT: 'on' });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`# ${paths.run}/keepalived-c0a87ac8.conf\n# k8s-ext-connector gateway: keepalived for 192.168.122.200 in netns nsc0a87ac8`);
    expect(result.stdout).toContain('vrrp_instance 192.168.122.201 {');
    expect(result.stdout).toContain('  priority 120\n');
    expect(result.stdout).not.toContain('nopreempt');
    expect(changes(newCalls())).toEqual([]);
  });

  it('exits 2 naming ips.conf when two IPs would share a VRRP router id, and touches nothing', async () => {
    fs.writeFileSync(paths.ips, `${IP1}\n10.0.0.200\n`);
    const result = await gateway(['--once', paths.ips], failover);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${paths.ips}: 10.0.0.200: shares its last octet (the VRRP router id 200) with ${IP1}`);
    expect(changes(newCalls())).toEqual([]);
  });

  it('refuses to run without a host key to share, instead of generating one', async () => {
    const result = await gateway(['--once', paths.ips], { ...failover, HOST_KEY_DIR: work.dir });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`HOST_KEY_DIR ${work.dir} has no ssh_host_*_key: with failover every gateway node must present the same host key`);
    expect(changes(newCalls()).filter((call) => call.includes('ssh-keygen'))).toEqual([]);
  });

  it('teardown stops keepalived and removes its files and the recorded roles', async () => {
    expect((await gateway(['--once', paths.ips], failover)).exitCode).toBe(0);
    await announce(IP1, 'BACKUP');
    const pids = [keepalivedPid('c0a87ac8'), vrrpPid('c0a87ac8')];
    const result = await gateway(['teardown', paths.ips]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(pids.map(isRunning)).toEqual([false, false]);
    expect(fs.readdirSync(paths.run)).toEqual(['vrrp-state']);
    expect(fs.readdirSync(path.join(paths.run, 'vrrp-state'))).toEqual([]);
  });

  it('keeps running: gives up the address when keepalived is killed, between cycles, without waiting for the resync', async () => {
    const child = spawn(path.join(ROOT, 'bin/gateway'), [paths.ips], { env: { NO_COLOR: '1', ...env, ...failover, INTERVAL: '600' }, cwd: work.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => fs.existsSync(path.join(paths.run, 'keepalived-c0a87ac9.pid')) && isRunning(keepalivedPid('c0a87ac9')), { timeout: 60_000 }).toBe(true);
      holdAddress(IP1);
      const dead = [keepalivedPid('c0a87ac8'), vrrpPid('c0a87ac8')];
      for (const pid of dead) process.kill(pid, 'SIGKILL');

      // INTERVAL is 10 minutes: only the check between cycles that the daemons still run sees it.
      await expect.poll(() => state().namespaces.nsc0a87ac8!.links.macvlanc0a87ac8!.addrs, { timeout: 30_000, interval: 50 }).toEqual([]);
      await expect.poll(() => fs.existsSync(path.join(paths.run, 'keepalived-c0a87ac8.pid')) && !dead.includes(keepalivedPid('c0a87ac8')), { timeout: 30_000 }).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
  });
});
