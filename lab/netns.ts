import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lib/exec.js';

/**
 * Primitives for system tests and the end-to-end lab: network namespaces, veths, bridges, sshd and TCP peers that the
 * test makes itself. A Lab records everything it creates and removes it all in cleanup(), also
 * after a failure. It never touches the root namespace's addresses, routes or iptables, nor
 * /etc/ssh/sshd_config.
 */

/** The package root, from the source (lab/) or the compiled (dist/lab/) location of this file. */
export const PACKAGE_ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
const HERE = path.join(PACKAGE_ROOT, 'lab');
export const SSHD = '/usr/sbin/sshd';

function onPath(program: string): boolean {
  if (program.startsWith('/')) return fs.existsSync(program);
  return (process.env.PATH ?? '')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])
    .some((dir) => fs.existsSync(path.join(dir, program)));
}

/** Why system tests cannot run here, or undefined when they can. */
export function systemSkipReason(programs: readonly string[] = []): string | undefined {
  if (process.getuid?.() !== 0) return 'system tests need root (network namespaces, iptables, sshd)';
  const missing = ['ip', 'unshare', 'nsenter', ...programs].filter((program) => !onPath(program));
  if (missing.length > 0) return `missing programs: ${missing.join(', ')}`;
  return undefined;
}

export { isRunning } from '../gateway/proc.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run in a PID namespace of its own (so `ps` sees only its own processes). */
  pidns?: boolean;
  /**
   * Enter only the network namespace (nsenter) with a mount namespace that still shares
   * /run/netns with the host, so the program can itself create namespaces with `ip netns add`
   * that everyone sees (`ip netns exec` gives the program a mount namespace of its own, in which
   * the namespaces it adds would stay private).
   */
  hostLike?: boolean;
  /** Collect stdout/stderr (default: collected into .output). */
  stdio?: 'pipe' | 'ignore';
  /**
   * Send stdout and stderr to this file instead of a pipe (the process can then outlive the
   * program that started it); output() reads the file.
   */
  logFile?: string;
}

/** `argv` in network namespace `ns` the way SpawnOptions.hostLike runs it (namespaces it adds are seen by everyone). */
export function hostLikeArgv(ns: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=/run/netns/${ns}`, '--', 'unshare', '--mount', '--propagation', 'unchanged', '--', ...argv];
}

export interface LabProcess {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number | null>;
}

export class Lab {
  readonly prefix: string;
  readonly tempDir: string;
  private readonly namespaces: string[] = [];
  private readonly rootLinks: string[] = [];
  private readonly processes: LabProcess[] = [];
  private readonly pidFiles: string[] = [];

  constructor(prefix: string) {
    if (!/^[a-z][a-z0-9]{0,7}$/.test(prefix)) throw new Error(`lab prefix must be 1-8 lowercase letters/digits: ${prefix}`);
    this.prefix = prefix;
    // Under /run when we can: sshd (StrictModes) refuses key files below a world-writable /tmp.
    const base = process.getuid?.() === 0 && fs.existsSync('/run') ? '/run' : os.tmpdir();
    this.tempDir = fs.mkdtempSync(path.join(base, `${prefix}-`));
  }

  /** Creates network namespace <prefix><name> with lo up; returns its full name. */
  async netns(name: string): Promise<string> {
    const full = `${this.prefix}${name}`;
    await run('ip', ['netns', 'del', full], { reject: false });
    await run('ip', ['netns', 'add', full]);
    this.namespaces.push(full);
    await this.exec(full, ['ip', 'link', 'set', 'lo', 'up']);
    return full;
  }

  /** Remembers a namespace made by someone else (e.g. the program under test) for cleanup. */
  adoptNetns(full: string): void {
    if (!this.namespaces.includes(full)) this.namespaces.push(full);
  }

  /** Takes on every namespace with this lab's prefix, also those made by the programs under test. */
  adoptLeftovers(): void {
    for (const ns of Lab.leftovers(this.prefix)) this.adoptNetns(ns);
  }

  async exec(ns: string | undefined, argv: readonly string[], options: { reject?: boolean; input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    const [file, ...args] = ns === undefined ? argv : ['ip', 'netns', 'exec', ns, ...argv];
    const result = await run(file as string, args, { reject: false, input: options.input, timeoutMs: options.timeoutMs ?? 30_000, env: options.env });
    const out = { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
    if (!result.ok && options.reject !== false) {
      throw new Error(`${argv.join(' ')} (in ${ns ?? 'root'}) failed: ${out.stderr || `exit code ${out.exitCode}`}`);
    }
    return out;
  }

  async bridge(ns: string, dev: string): Promise<void> {
    await this.exec(ns, ['ip', 'link', 'add', dev, 'type', 'bridge']);
    await this.up(ns, dev);
  }

  /** A veth pair with one end in each namespace (each end is created directly in its namespace). */
  async veth(nsA: string, devA: string, nsB: string, devB: string): Promise<void> {
    await this.exec(undefined, ['ip', 'link', 'add', devA, 'netns', nsA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB]);
    await this.up(nsA, devA);
    await this.up(nsB, devB);
  }

  async master(ns: string, dev: string, bridge: string): Promise<void> {
    await this.exec(ns, ['ip', 'link', 'set', dev, 'master', bridge]);
  }

  async addr(ns: string, dev: string, cidr: string): Promise<void> {
    await this.exec(ns, ['ip', 'addr', 'add', cidr, 'dev', dev]);
  }

  async up(ns: string, dev: string): Promise<void> {
    await this.exec(ns, ['ip', 'link', 'set', dev, 'up']);
  }

  async route(ns: string, args: readonly string[]): Promise<void> {
    await this.exec(ns, ['ip', 'route', 'add', ...args]);
  }

  async sysctl(ns: string, key: string, value: string): Promise<void> {
    await this.exec(ns, ['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** Starts a long-running program, tracked and killed (with its process group) in cleanup. */
  spawn(ns: string | undefined, argv: readonly string[], options: SpawnOptions = {}): LabProcess {
    let command = [...argv];
    if (options.pidns) command = ['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', '--', ...command];
    if (ns !== undefined) command = options.hostLike ? hostLikeArgv(ns, command) : ['ip', 'netns', 'exec', ns, ...command];
    const [file, ...args] = command;
    const logFd = options.logFile ? fs.openSync(options.logFile, 'a') : undefined;
    const child = spawn(file as string, args, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      detached: true,
      stdio: logFd !== undefined ? ['ignore', logFd, logFd] : options.stdio === 'ignore' ? 'ignore' : ['ignore', 'pipe', 'pipe'],
    });
    if (logFd !== undefined) fs.closeSync(logFd);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => {
      child.on('exit', (code) => resolve(code));
      child.on('error', () => resolve(-1));
    });
    const readOutput = (): string => {
      if (!options.logFile) return output;
      try {
        return fs.readFileSync(options.logFile, 'utf8');
      } catch {
        return '';
      }
    };
    const handle: LabProcess = { child, output: readOutput, exited };
    this.processes.push(handle);
    return handle;
  }

  /** Stops a process started with spawn() (SIGTERM to its group, SIGKILL after `killAfterMs`, default 3 s). */
  async stop(handle: LabProcess, signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 3000): Promise<void> {
    const pid = handle.child.pid;
    if (pid === undefined || handle.child.exitCode !== null || handle.child.signalCode !== null) return;
    try {
      process.kill(-pid, signal);
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, killAfterMs);
    await handle.exited;
    clearTimeout(timer);
  }

  /** An ed25519 key pair in the lab's temp dir. */
  async sshKeypair(name = 'id_ed25519'): Promise<{ privateKey: string; publicKey: string }> {
    const privateKey = path.join(this.tempDir, name);
    if (!fs.existsSync(privateKey)) {
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'k8s-ext-connector-test', '-f', privateKey]);
    }
    return { privateKey, publicKey: `${privateKey}.pub` };
  }

  /**
   * Runs an sshd in `ns` with its own config, authorized_keys and pid file in the lab's temp dir
   * (GatewayPorts clientspecified, root login by key), and a host key of its own unless `hostKey`
   * (a private key file several sshds may share) is given. Resolves once it listens.
   */
  async startSshd(
    ns: string,
    options: { listenAddress: string; port?: number; authorizedKeys: readonly string[]; extraConfig?: readonly string[]; hostKey?: string },
  ): Promise<{ pid: number; configFile: string; pidFile: string; hostPublicKey: string }> {
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const id = `sshd-${ns}-${options.listenAddress}-${options.port ?? 22}`;
    const dir = path.join(this.tempDir, id);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const hostKey = options.hostKey ?? path.join(dir, 'host_ed25519');
    if (!fs.existsSync(hostKey)) await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    const authorized = path.join(dir, 'authorized_keys');
    fs.writeFileSync(authorized, options.authorizedKeys.map((file) => fs.readFileSync(file, 'utf8').trim()).join('\n') + '\n', { mode: 0o600 });
    const pidFile = path.join(dir, 'sshd.pid');
    const configFile = path.join(dir, 'sshd_config');
    fs.writeFileSync(
      configFile,
      [
        `ListenAddress ${options.listenAddress}`,
        `Port ${options.port ?? 22}`,
        `HostKey ${hostKey}`,
        `PidFile ${pidFile}`,
        `AuthorizedKeysFile ${authorized}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'GatewayPorts clientspecified',
        'AllowTcpForwarding yes',
        'LogLevel ERROR',
        ...(options.extraConfig ?? []),
        '',
      ].join('\n'),
    );
    await run(SSHD, ['-t', '-f', configFile]);
    await this.exec(ns, [SSHD, '-f', configFile]);
    this.pidFiles.push(pidFile);
    const pid = await waitFor(() => (fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) || undefined : undefined), 5000, `sshd pid file ${pidFile}`);
    return { pid, configFile, pidFile, hostPublicKey: `${hostKey}.pub` };
  }

  /** A TCP server in `ns` that answers each connection with the peer address it saw. */
  async peerServer(ns: string, ip: string, port: number): Promise<{ seen: () => string[]; process: LabProcess }> {
    const log = path.join(this.tempDir, `peer-${ns}-${ip}-${port}.log`);
    fs.writeFileSync(log, '');
    const handle = this.spawn(ns, [process.execPath, path.join(HERE, 'peer-server.mjs'), ip, String(port), log]);
    await waitFor(() => (handle.output().includes('listening') ? true : undefined), 5000, `peer server on ${ip}:${port}`, handle);
    return { seen: () => fs.readFileSync(log, 'utf8').split('\n').filter(Boolean), process: handle };
  }

  /** Connects from `ns` to ip:port and resolves with the server's reply (rejects on failure). */
  async connect(ns: string, ip: string, port: number, options: { timeoutMs?: number } = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const result = await this.exec(ns, [process.execPath, path.join(HERE, 'peer-client.mjs'), ip, String(port), String(timeoutMs)], {
      reject: false,
      timeoutMs: timeoutMs + 2000,
    });
    if (result.exitCode !== 0) throw new Error(`connect ${ip}:${port} from ${ns} failed: ${result.stderr.trim()}`);
    return result.stdout.trim();
  }

  /** True when a TCP connection from `ns` to ip:port is accepted. */
  async canConnect(ns: string, ip: string, port: number, timeoutMs = 1000): Promise<boolean> {
    const probe =
      'const s=require("net").connect({host:process.argv[1],port:+process.argv[2]});' +
      's.setTimeout(+process.argv[3],()=>process.exit(1));s.on("connect",()=>process.exit(0));s.on("error",()=>process.exit(1));';
    const result = await this.exec(ns, [process.execPath, '-e', probe, ip, String(port), String(timeoutMs)], {
      reject: false,
      timeoutMs: timeoutMs + 2000,
    });
    return result.exitCode === 0;
  }

  /** Lets processes started with spawn() outlive this program (for a lab left running). */
  detachAll(): number[] {
    const pids = this.processes.splice(0).map((handle) => {
      handle.child.stdout?.destroy();
      handle.child.stderr?.destroy();
      handle.child.unref();
      return handle.child.pid ?? 0;
    });
    this.namespaces.splice(0);
    this.pidFiles.splice(0);
    return pids.filter((pid) => pid > 0);
  }

  /** Removes one namespace made by netns() (or adopted): its processes first, then the namespace. */
  async removeNetns(full: string): Promise<void> {
    const index = this.namespaces.indexOf(full);
    if (index >= 0) this.namespaces.splice(index, 1);
    await Lab.deleteNetns(full);
  }

  private static async deleteNetns(ns: string): Promise<void> {
    // Processes still inside the namespace (started by the program under test) go first.
    const pids = await run('ip', ['netns', 'pids', ns], { reject: false });
    for (const pid of pids.stdout.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await run('ip', ['netns', 'del', ns], { reject: false });
  }

  /** Removes every namespace, process, pid file and temp file the lab made. Idempotent. */
  async cleanup(): Promise<void> {
    for (const handle of this.processes.splice(0).reverse()) await this.stop(handle).catch(() => undefined);
    for (const pidFile of this.pidFiles.splice(0)) {
      try {
        const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
        if (pid > 1) process.kill(pid, 'SIGTERM');
      } catch {
        /* not running */
      }
    }
    for (const ns of this.namespaces.splice(0).reverse()) await Lab.deleteNetns(ns);
    for (const link of this.rootLinks.splice(0)) await run('ip', ['link', 'del', link], { reject: false });
    fs.rmSync(this.tempDir, { recursive: true, force: true });
  }

  /** Namespaces whose names start with the lab's prefix that still exist (for leak checks). */
  static leftovers(prefix: string): string[] {
    // `ip netns list` lists the entries of /run/netns: read them without starting a program.
    let names: string[];
    try {
      names = fs.readdirSync('/run/netns');
    } catch {
      return [];
    }
    return names.filter((name) => name.startsWith(prefix)).sort();
  }
}

/** Polls `probe` every 50 ms until it returns a value, or rejects after `timeoutMs`. */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string, handle?: LabProcess): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${handle ? `\n${handle.output()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Whether process group `pid` still has a process. */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends a process group started by another run of a program (a lab left running): SIGTERM, then
 * SIGKILL if a process of it is still there after `graceMs`. Resolves once the group is gone.
 */
export async function stopProcessGroup(pid: number, graceMs = 5000): Promise<void> {
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    return;
  }
  try {
    await waitFor(() => (groupAlive(pid) ? undefined : true), graceMs, `process group ${pid} to end`);
  } catch {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await waitFor(() => (groupAlive(pid) ? undefined : true), 5000, `process group ${pid} to end after SIGKILL`).catch(() => undefined);
  }
}

/**
 * Runs `cleanup` when the script gets SIGINT or SIGTERM, then exits 130; a second signal exits at
 * once. Returns the function that removes the handler again.
 */
export function cleanUpOnInterrupt(cleanup: () => Promise<unknown>): () => void {
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\ninterrupted: removing the lab...\n');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
