import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readStandinLog, ROOT, runBin, standinPath, tempDir, type StandinCall } from '../helpers/cli.js';
import { forwarderData, writeConfigMap } from '../helpers/forwarder-lab.js';
import { cpuHasAes, preferredCiphers } from '../../lib/ciphers.js';

const STANDINS = path.join(ROOT, 'test/bin/forwarder');
const NAME = 'my-external-service1';
const L1 = '2049:192.168.122.139:8000,192.168.122.200';
const L2 = '2050:192.168.122.139:8000,192.168.122.201';
const R1 = '192.168.122.200:2049:10.96.0.11:80,192.168.122.200';
const DNAT = 'PREROUTING -t nat -m tcp -p tcp --dst 10.244.0.50 --src 10.244.0.11 --dport 8000 -j DNAT --to-destination 10.244.0.50:2049';
const SNAT = 'POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport 2049 -j SNAT --to-source 10.244.0.50';
/** The ciphers the forwarder offers on this machine: AES-GCM first where the CPU has AES instructions. */
const CIPHERS = preferredCiphers(cpuHasAes(fs.readFileSync('/proc/cpuinfo', 'utf8'))).join(',');
const SSH_PREFIX = `ssh -o StrictHostKeyChecking=no -o BatchMode=yes -o ExitOnForwardFailure=yes -o ServerAliveInterval=1 -o ServerAliveCountMax=3 -o ConnectTimeout=10 -o Ciphers=${CIPHERS} -i /etc/ssh-key/id_rsa`;
const MUTATING = new Set(['ssh', 'kill', 'iptables-restore']);

let work: ReturnType<typeof tempDir>;
let state: string;
let configDir: string;
let logFile: string;
let env: NodeJS.ProcessEnv;

function runningTunnels(): string[] {
  const procs = path.join(state, 'procs');
  return fs
    .readdirSync(procs)
    .sort((a, b) => Number(a) - Number(b))
    .map((pid) => `${pid} ${fs.readFileSync(path.join(procs, pid), 'utf8').trim()}`);
}

/** Seeds a "running" ssh process with the given command line. */
function seedProcess(pid: number, commandLine: string): void {
  fs.writeFileSync(path.join(state, 'procs', String(pid)), `${commandLine}\n`);
}

function mutations(calls: StandinCall[] = readStandinLog(logFile)): string[] {
  return calls.filter((call) => MUTATING.has(call.program)).map((call) => [call.program, ...call.argv].join(' '));
}

/** The command line the forwarder runs for a tunnel line; `asOriginal`: as the original ran it (no `--` before the host). */
function tunnelCommand(kind: 'L' | 'R', line: string, asOriginal = false): string {
  const comma = line.lastIndexOf(',');
  return `${SSH_PREFIX} ${kind === 'L' ? '-g -f -N -L' : '-f -N -R'} ${line.slice(0, comma)}${asOriginal ? '' : ' --'} ${line.slice(comma + 1)}`;
}

beforeEach(() => {
  work = tempDir('k8xfw-cli-');
  state = path.join(work.dir, 'state');
  configDir = path.join(work.dir, 'config');
  logFile = path.join(work.dir, 'calls.jsonl');
  fs.mkdirSync(path.join(state, 'procs'), { recursive: true });
  writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': [L1, L2], 'remote-ssh-tunnel': [R1], 'iptables-rule': [DNAT, SNAT] }) });
  env = {
    PATH: standinPath(STANDINS),
    FORWARDER_STANDIN_DIR: state,
    STANDIN_LOG: logFile,
    EXTERNAL_SERVICE_NAME: NAME,
    DATA_FILE: path.join(configDir, 'data.yaml'),
  };
});

afterEach(() => {
  work.remove();
});

describe('forwarder --once', () => {
  it('starts the missing tunnels, stops the others and loads the nat table in one iptables-restore', async () => {
    seedProcess(17, tunnelCommand('L', L1, true).replace(SSH_PREFIX, 'ssh -o StrictHostKeyChecking=no -i /etc/ssh-key/id_rsa'));
    seedProcess(18, 'ssh -o StrictHostKeyChecking=no -i /etc/ssh-key/id_rsa -g -f -N -L 12049:192.168.122.139:8000 192.168.122.200');

    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    const calls = readStandinLog(logFile);
    const done = mutations(calls);
    expect(done[0]).toBe('kill 18');
    // The starts and the nat table run side by side: their order is not fixed.
    expect(done.slice(1).sort()).toEqual([tunnelCommand('L', L2), tunnelCommand('R', R1), 'iptables-restore'].sort());
    expect(calls.find((call) => call.program === 'iptables-restore')?.stdin).toBe(
      `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A ${DNAT.replace(' -t nat', '')}\n-A ${SNAT.replace(' -t nat', '')}\nCOMMIT\n`,
    );
    expect(calls.filter((call) => call.program === 'ps')[0]?.argv).toEqual(['-C', 'ssh', '-o', 'pid,args', '--no-headers']);
    expect(runningTunnels().map((line) => line.split(' ')[0]).sort()).toEqual(['1000', '1001', '17']);
  });

  it('runs no mutating command when run again with nothing changed', async () => {
    expect((await runBin('forwarder', ['--once'], { env })).exitCode).toBe(0);
    fs.rmSync(logFile);

    const again = await runBin('forwarder', ['--once'], { env });

    expect(again.exitCode).toBe(0);
    expect(readStandinLog(logFile).map((call) => call.program).sort()).toEqual(['iptables-save', 'ps']);
  });

  it('stops every tunnel and empties the nat table when the data file has no entry for its name', async () => {
    expect((await runBin('forwarder', ['--once'], { env })).exitCode).toBe(0);
    fs.rmSync(logFile);

    const result = await runBin('forwarder', ['--once'], { env: { ...env, EXTERNAL_SERVICE_NAME: 'another-service' } });

    expect(result.exitCode).toBe(0);
    expect(mutations()).toEqual(['kill 1000', 'kill 1001', 'kill 1002', 'iptables-restore']);
    expect(runningTunnels()).toEqual([]);
  });

  it('changes nothing and exits 2 naming the file and field when the data file is malformed', async () => {
    seedProcess(17, 'ssh -g -f -N -L 1:a:2 h');
    writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': ['2049-192.168.122.139,oops'] }) });

    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${env.DATA_FILE}: forwarder.${NAME}.ssh-tunnel line 1: "2049-192.168.122.139,oops" is not PORT:HOST:PORT,SSH_HOST`);
    expect(mutations()).toEqual([]);
  });

  it('reports a tunnel that cannot start with ssh\'s own error, still starting the others and loading the rules', async () => {
    fs.writeFileSync(path.join(state, 'ssh-fail'), '192\\.168\\.122\\.201$\n');

    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`failed: start local tunnel ${L2.replaceAll('.', '\\.')} \\(missing\\) .*error="ssh: connect to host 192\\.168\\.122\\.201 port 22: Connection refused`));
    expect(result.stderr).toContain('1 of 4 changes failed');
    // Tunnels start in parallel, alongside the nat table: their order is not fixed. A refused start
    // is tried twice more in the cycle, however long the refusal took (see START_RETRY).
    expect(mutations().sort()).toEqual([tunnelCommand('L', L1), ...Array(3).fill(tunnelCommand('L', L2)), tunnelCommand('R', R1), 'iptables-restore'].sort());
  });

  it('prints the mutating commands instead of running them under DEBUG=true', async () => {
    seedProcess(17, 'ssh -g -f -N -L 1:a:2 h');

    const result = await runBin('forwarder', ['--once'], { env: { ...env, DEBUG: 'true' } });

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(
      [
        'kill 17',
        tunnelCommand('L', L1),
        tunnelCommand('L', L2),
        tunnelCommand('R', R1),
        'iptables-restore',
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':POSTROUTING ACCEPT [0:0]',
        `-A ${DNAT.replace(' -t nat', '')}`,
        `-A ${SNAT.replace(' -t nat', '')}`,
        'COMMIT',
      ].join('\n'),
    );
    expect(mutations()).toEqual([]);
  });

  it('passes the ssh user, key, ciphers and extra options from flags and the environment', async () => {
    const result = await runBin('forwarder', ['--once', '--ssh-key', '/keys/k', '--known-hosts', '/keys/known'], {
      env: { ...env, SSH_USER: 'fwd', SSH_OPTIONS: 'ServerAliveInterval=5', SSH_STRICT_HOST_KEY_CHECKING: 'accept-new', SSH_CIPHERS: 'chacha20-poly1305@openssh.com' },
    });

    expect(result.exitCode).toBe(0);
    expect(mutations().find((command) => command.includes(' -L 2049:'))).toBe(
      'ssh -o ServerAliveInterval=5 -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/keys/known -o BatchMode=yes -o ExitOnForwardFailure=yes ' +
        '-o ServerAliveInterval=1 -o ServerAliveCountMax=3 -o ConnectTimeout=10 -o Ciphers=chacha20-poly1305@openssh.com -i /keys/k -g -f -N -L 2049:192.168.122.139:8000 -- fwd@192.168.122.200',
    );
  });

  it.each([
    ['EXTERNAL_SERVICE_NAME', 'EXTERNAL_SERVICE_NAME is required to be passed as an environment variable'],
    ['DATA_FILE', 'DATA_FILE is required to be passed as an environment variable'],
  ])('exits 2 with a clear message when %s is missing', async (variable, message) => {
    const result = await runBin('forwarder', ['--once'], { env: { ...env, [variable]: '' } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(message);
    expect(readStandinLog(logFile)).toEqual([]);
  });

  it('lists every setting with its environment variable in run --help, and says so in --help', async () => {
    const overview = await runBin('forwarder', ['--help'], { env });
    expect(overview.exitCode).toBe(0);
    expect(overview.stdout).toContain('`forwarder run --help`');
    const result = await runBin('forwarder', ['run', '--help'], { env });
    expect(result.exitCode).toBe(0);
    for (const variable of ['EXTERNAL_SERVICE_NAME', 'DATA_FILE', 'SSH_KEY', 'SSH_USER', 'SSH_STRICT_HOST_KEY_CHECKING', 'SSH_KNOWN_HOSTS', 'SSH_OPTIONS', 'INTERVAL', 'SSH_START_TIMEOUT']) {
      expect(result.stdout.replace(/\s+/g, ' ')).toContain(`env: ${variable})`);
    }
  });
});

describe('forwarder status', () => {
  it('shows missing tunnels and rules and exits 1, then exits 0 once the forwarder has run', async () => {
    seedProcess(17, tunnelCommand('L', L1));

    const before = await runBin('forwarder', ['status'], { env });

    expect(before.exitCode).toBe(1);
    expect(before.stdout).toContain(`local  ${L1}  pid 17  ok`);
    expect(before.stdout).toContain(`local  ${L2}  pid -  missing (will be started)`);
    expect(before.stdout).toContain(`missing  ${DNAT.replace(' -t nat', '')}`);
    expect(mutations()).toEqual([]);

    await runBin('forwarder', ['--once'], { env });
    const after = await runBin('forwarder', ['status'], { env });
    expect(after.stdout).toContain('nat table: in sync, 2 live, 2 desired');
    expect(after.exitCode).toBe(0);
  });
});

/** bin/forwarder's loop (INTERVAL 60 s): the child, its stderr so far, and its exit code once it exits. */
function startLoop(extraEnv: NodeJS.ProcessEnv = {}): { child: ChildProcess; readonly log: string; exited: Promise<number | null> } {
  const child = spawn(path.join(ROOT, 'bin/forwarder'), [], { env: { ...env, INTERVAL: '60', NO_COLOR: '1', ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    get log() {
      return log;
    },
    exited,
  };
}

describe('forwarder (loop)', () => {
  it('follows ConfigMap updates through its watch, not at the resync, keeps everything on a malformed update and leaves the tunnels on SIGTERM', async () => {
    const loop = startLoop({ LOG_LEVEL: 'debug' });
    const { child, exited } = loop;
    try {
      // The recheck after starting has seen the three tunnels: no cycle is due for 60 s.
      await expect.poll(() => loop.log, { timeout: 10_000 }).toMatch(/in sync tunnels=3/);
      // Tunnels start in parallel, so the stand-in's pids follow no fixed order: find them by spec.
      const first = runningTunnels().find((line) => line.endsWith(L1.replace(',', ' -- ')));
      const remote = runningTunnels().find((line) => line.endsWith(R1.replace(',', ' -- ')));

      const L3 = '2051:192.168.122.139:8000,192.168.122.202';
      writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': [L1, L3], 'remote-ssh-tunnel': [R1], 'iptables-rule': [DNAT, SNAT] }) });
      // Only the watch of the data file brings a cycle before the resync (INTERVAL is 60 s). How soon
      // is for the bench to measure on an idle machine: on a loaded one, the stand-ins' program
      // starts alone can take over a second.
      await expect.poll(() => runningTunnels().join('\n'), { timeout: 10_000, interval: 25 }).toContain(L3.replace(',', ' -- '));
      expect(loop.log.split('\n').some((line) => line.includes('change seen, reconciling') && line.includes(configDir))).toBe(true);
      expect(runningTunnels().sort()).toEqual([first, remote, `1003 ${tunnelCommand('L', L3)}`].sort());

      fs.rmSync(logFile);
      writeConfigMap(configDir, { 'data.yaml': 'forwarder: [\n' });
      await expect.poll(() => loop.log, { timeout: 10_000 }).toMatch(/invalid YAML.*keeping the tunnels and rules that are applied/);
      expect(mutations()).toEqual([]);
      expect(runningTunnels()).toHaveLength(3);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(loop.log).toContain('stopped; tunnels and nat rules left in place');
      expect(runningTunnels()).toHaveLength(3);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('forwarder (loop) after starting tunnels', () => {
  it('looks again within seconds, not at the next resync, and restarts a tunnel that died right after starting', async () => {
    const { child, exited } = startLoop();
    try {
      await expect.poll(() => runningTunnels().length, { timeout: 10_000 }).toBe(3);
      // The gateway ends the session of one tunnel (e.g. one opened under its previous config).
      const died = runningTunnels().find((line) => line.endsWith(L2.replace(',', ' -- '))) as string;
      fs.rmSync(path.join(state, 'procs', died.split(' ')[0] as string));
      expect(runningTunnels()).toHaveLength(2);

      // INTERVAL is 60 s: only the recheck after starting brings it back this soon.
      await expect.poll(() => runningTunnels().filter((line) => line.endsWith(L2.replace(',', ' -- '))), { timeout: 5000, interval: 100 }).toHaveLength(1);
      expect(runningTunnels()).toHaveLength(3);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

/** Whether this test runs in the host's network namespace (where the forwarder must leave the routes alone). */
const IN_HOST_NETNS = fs.existsSync('/proc/sys/net/core/netdev_max_backlog');
/** A network namespace of its own, as a pod has, made with `unshare` (as root, or in a user namespace). */
const OWN_NETNS = ['unshare', '--user', '--map-root-user', '--net', '--'];
const ownNetnsProblem = ((): string | undefined => {
  const result = spawnSync(OWN_NETNS[0]!, [...OWN_NETNS.slice(1), 'true']);
  return result.status === 0 ? undefined : `cannot make a network namespace with ${OWN_NETNS.join(' ')}: ${result.error?.message ?? result.stderr.toString().trim()}`;
})();
if (ownNetnsProblem) console.warn(`forwarder CLI quickack test skipped: ${ownNetnsProblem}`);
if (!IN_HOST_NETNS) console.warn("forwarder CLI host-namespace test skipped: these tests do not run in the host's network namespace");

describe('forwarder: quickack on the pod routes', () => {
  const ROUTE_FIXTURE = path.join(ROOT, 'test/fixtures/forwarder/ip-route-show-table-all.json');
  /** The route changes, from the ip -batch calls' input. */
  const routeChanges = (): string[] =>
    readStandinLog(logFile)
      .filter((call) => call.program === 'ip' && call.argv.join(' ') === '-batch -')
      .flatMap((call) => (call.stdin ?? '').split('\n').filter(Boolean));

  /** bin/forwarder --once in a network namespace of its own, on the stand-ins. */
  async function runInOwnNetns(extraEnv: NodeJS.ProcessEnv = {}): Promise<{ exitCode: number; stderr: string }> {
    const result = spawnSync(OWN_NETNS[0]!, [...OWN_NETNS.slice(1), path.join(ROOT, 'bin/forwarder'), '--once'], {
      env: { NO_COLOR: '1', ...env, ...extraEnv },
      encoding: 'utf8',
      timeout: 20_000,
    });
    return { exitCode: result.status ?? -1, stderr: result.stderr };
  }

  it.skipIf(ownNetnsProblem !== undefined)("adds quickack to every unicast and local route of its own namespace, then leaves them as they are", async () => {
    fs.copyFileSync(ROUTE_FIXTURE, path.join(state, 'routes.json'));

    const first = await runInOwnNetns();

    expect(first.stderr).not.toMatch(/ERROR/);
    expect(first.exitCode).toBe(0);
    expect(routeChanges()).toEqual([
      'route change table main unicast default via 10.244.0.1 dev eth0 proto boot scope global quickack 1',
      'route change table main unicast 10.244.0.0/24 dev eth0 proto kernel scope link src 10.244.0.50 quickack 1',
      'route change table local local 10.244.0.50 dev eth0 proto kernel scope host src 10.244.0.50 quickack 1',
      'route change table local local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
      'route change table local local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
    ]);
    expect(first.stderr).toContain('adding quickack to 5 route(s), so that their sockets ACK at once: default via 10.244.0.1 dev eth0 (table main), 10.244.0.0/24 dev eth0 (table main)');
    expect(JSON.parse(fs.readFileSync(path.join(state, 'routes.json'), 'utf8')).filter((route: { metrics?: unknown }) => route.metrics !== undefined)).toHaveLength(5);
    fs.rmSync(logFile);

    const second = await runInOwnNetns();

    expect(second.exitCode).toBe(0);
    expect(routeChanges()).toEqual([]);
    expect(readStandinLog(logFile).some((call) => call.program === 'ip')).toBe(true);
  });

  it.skipIf(ownNetnsProblem !== undefined)('leaves the routes alone under QUICKACK=off', async () => {
    fs.copyFileSync(ROUTE_FIXTURE, path.join(state, 'routes.json'));

    const result = await runInOwnNetns({ QUICKACK: 'off' });

    expect(result.exitCode).toBe(0);
    expect(readStandinLog(logFile).filter((call) => call.program === 'ip')).toEqual([]);
  });

  it.skipIf(!IN_HOST_NETNS)("never reads or changes the routes of the host's network namespace", async () => {
    fs.copyFileSync(ROUTE_FIXTURE, path.join(state, 'routes.json'));

    const result = await runBin('forwarder', ['--once'], { env });
    const status = await runBin('forwarder', ['status'], { env });

    expect(result.exitCode).toBe(0);
    expect(readStandinLog(logFile).filter((call) => call.program === 'ip')).toEqual([]);
    expect(status.stdout).toContain("routes: left alone (this is the host's network namespace, whose routes are not this program's)");
  });
});

describe('forwarder (loop) with a data file that is not a regular file', () => {
  it('reports a FIFO at once, keeps the tunnels, and stops on the first SIGTERM', async () => {
    const fifo = path.join(work.dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    seedProcess(17, tunnelCommand('L', L1));
    const loop = startLoop({ DATA_FILE: fifo });
    const { child, exited } = loop;
    try {
      await expect.poll(() => loop.log, { timeout: 10_000 }).toContain(`${fifo}: is a FIFO, not a regular file; keeping the tunnels and rules that are applied`);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(mutations()).toEqual([]);
      expect(runningTunnels()).toEqual([`17 ${tunnelCommand('L', L1)}`]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('forwarder --once with a truncated or degenerate data file', () => {
  it.each([
    ['{}', '{}\n', 'forwarder: is missing'],
    ['two empty sections', '"forwarder":\n"gateway":\n', 'forwarder: has no value (a truncated file?)'],
    ['a file cut after its entry name', `"forwarder":\n  "${NAME}":\n`, 'gateway: is missing'],
    ['an entry without its blocks', `"forwarder":\n  "${NAME}":\n"gateway": {}\n`, `forwarder.${NAME}: has no value (a truncated file?)`],
  ])('keeps the tunnels and the nat table when the data file is %s', async (_title, text, reason) => {
    expect((await runBin('forwarder', ['--once'], { env })).exitCode).toBe(0);
    const tunnels = runningTunnels();
    fs.rmSync(logFile);
    writeConfigMap(configDir, { 'data.yaml': text });

    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${env.DATA_FILE}: ${reason}`);
    expect(mutations()).toEqual([]);
    expect(runningTunnels()).toEqual(tunnels);
  });
});

describe('forwarder (loop) between cycles', () => {
  it('restarts a tunnel that exits long after it started within seconds, not at the next resync', async () => {
    const loop = startLoop({ LOG_LEVEL: 'debug' });
    const { child, exited } = loop;
    try {
      // The recheck after starting has seen the three tunnels: no cycle is due for 60 s.
      await expect.poll(() => loop.log, { timeout: 10_000 }).toMatch(/in sync tunnels=3/);
      expect(runningTunnels()).toHaveLength(3);
      const died = runningTunnels().find((line) => line.endsWith(R1.replace(',', ' -- '))) as string;
      fs.rmSync(path.join(state, 'procs', died.split(' ')[0] as string));

      // INTERVAL is 60 s and no recheck is pending: only the liveness check brings it back.
      await expect.poll(() => runningTunnels().filter((line) => line.endsWith(R1.replace(',', ' -- '))), { timeout: 5000, interval: 100 }).toHaveLength(1);
      expect(runningTunnels()).toHaveLength(3);
      const calls = readStandinLog(logFile);
      const restart = calls.findLastIndex((call) => call.program === 'ssh');
      // The first start, the recheck, then the cycle the liveness check started (no resync between).
      expect(calls.slice(0, restart).filter((call) => call.program === 'ps' && call.argv.includes('-C'))).toHaveLength(3);
      expect(mutations(calls).filter((command) => command.startsWith('ssh '))).toEqual(
        expect.arrayContaining([tunnelCommand('L', L1), tunnelCommand('L', L2), tunnelCommand('R', R1)]),
      );
      expect(mutations(calls).filter((command) => command.startsWith('ssh '))).toHaveLength(4);
      expect(mutations(calls.slice(restart))).toEqual([tunnelCommand('R', R1)]);
      expect(loop.log).toContain('poll saw a change, reconciling');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('forwarder when ps fails', () => {
  it('starts no tunnel again: a ps that fails is an error, not "no ssh runs"', async () => {
    expect((await runBin('forwarder', ['--once'], { env })).exitCode).toBe(0);
    const tunnels = runningTunnels();
    expect(tunnels).toHaveLength(3);
    fs.rmSync(logFile);
    fs.writeFileSync(path.join(state, 'ps-fail'), '^-C ssh\n');

    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('Error: /proc must be mounted');
    expect(mutations()).toEqual([]);
    expect(runningTunnels()).toEqual(tunnels);
  });

  it('in the loop, restarts only the tunnel that exited once ps answers again', async () => {
    const loop = startLoop({ LOG_LEVEL: 'debug' });
    const { child, exited } = loop;
    try {
      await expect.poll(() => loop.log, { timeout: 10_000 }).toMatch(/in sync tunnels=3/);
      const cyclesBefore = (loop.log.match(/ cycle \d+ started/g) ?? []).length;
      fs.rmSync(logFile);
      // A tunnel exits; the cycle that the liveness check starts then cannot list the ssh processes.
      fs.writeFileSync(path.join(state, 'ps-fail'), '^-C ssh\n');
      const died = runningTunnels().find((line) => line.endsWith(R1.replace(',', ' -- '))) as string;
      fs.rmSync(path.join(state, 'procs', died.split(' ')[0] as string));

      await expect.poll(() => loop.log, { timeout: 10_000 }).toMatch(new RegExp(`cycle ${cyclesBefore + 1} (done|failed)`));
      expect(loop.log).toMatch(new RegExp(`cycle ${cyclesBefore + 1} failed; retrying .*Error: /proc must be mounted`));
      expect(mutations()).toEqual([]);

      fs.rmSync(path.join(state, 'ps-fail'));
      await expect.poll(() => runningTunnels().filter((line) => line.endsWith(R1.replace(',', ' -- '))), { timeout: 10_000, interval: 50 }).toHaveLength(1);
      expect(mutations()).toEqual([tunnelCommand('R', R1)]);
      expect(runningTunnels()).toHaveLength(3);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('forwarder: nothing from the data file or SSH_USER becomes an ssh option', () => {
  it.each([
    ['a host that ssh would read as a jump host', '2049:192.168.122.139:8000,-Jevil.example', 'SSH_HOST host "-Jevil.example" is neither an IPv4 address nor a host name'],
    ['a user that is an ssh option', '2049:192.168.122.139:8000,-oProxyJump@host', 'SSH_HOST user "-oProxyJump" is not a user name'],
    ['port 0', '0:192.168.122.139:8000,192.168.122.200', 'PORT "0" is not a port (1..65535)'],
  ])('rejects %s by line and starts no ssh', async (_title, line, reason) => {
    writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': [L1, line] }) });

    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${env.DATA_FILE}: forwarder.${NAME}.ssh-tunnel line 2: ${JSON.stringify(line)}: ${reason}`);
    expect(mutations()).toEqual([]);
  });

  it('exits 2 for SSH_USER=-Jevil before running anything', async () => {
    const result = await runBin('forwarder', ['--once'], { env: { ...env, SSH_USER: '-Jevil' } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('SSH_USER: "-Jevil" is not a user name');
    expect(readStandinLog(logFile)).toEqual([]);
  });
});
