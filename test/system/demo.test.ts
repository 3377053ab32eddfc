import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Lab, PACKAGE_ROOT } from '../../lab/netns.js';
import { run } from '../../lib/exec.js';
import { preflightProblems } from '../../lab/preflight.js';
import { ADDRESSES, LAB_PREFIX } from '../../lab/topology.js';
import { binaryProblems, kubeBinaries } from '../../lab/kube-binaries.js';
import { namedNetnsIds } from '../helpers/host-snapshot.js';

const problems = preflightProblems();
const skip = problems.length > 0 ? problems.join(' ') : undefined;
if (skip) console.warn(`system tests skipped: ${skip}`);

const missingBinaries = await binaryProblems(kubeBinaries());
const clusterSkip = skip ?? (missingBinaries.length > 0 ? `the control-plane binaries are not built (npm run cluster:build): ${missingBinaries[0]}` : undefined);
if (clusterSkip && !skip) console.warn(`cluster-mode demo skipped: ${clusterSkip}`);

const DEMO = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'demo.js');
const demo = (args: string[] = [], timeoutMs = 240_000) =>
  run(process.execPath, [DEMO, ...args], { reject: false, timeoutMs, env: { NO_COLOR: '1' } });
/** Where the demo records a lab left running by --keep. */
const STATE_FILE = '/run/k8s-ext-connector-demo.json';

/**
 * The lab's processes: those whose command line names one of `folders`, and those in one of the
 * lab's network namespaces (pods, tunnels, sshds). Pid -> command line.
 */
function labProcesses(folders: readonly string[]): Map<number, string> {
  const netns = new Set(namedNetnsIds(LAB_PREFIX));
  const found = new Map<number, string>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      const net = fs.readlinkSync(`/proc/${entry}/ns/net`);
      if (folders.some((folder) => args.includes(folder)) || netns.has(net)) found.set(Number(entry), args);
    } catch {
      /* ended meanwhile */
    }
  }
  return found;
}

/** Mount points (of this mount namespace) at or below one of `folders`, or network namespaces of the lab. */
function mountsOf(folders: readonly string[]): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(`/run/netns/${LAB_PREFIX}`) || folders.some((folder) => point.startsWith(folder)));
}

const labRunFolders = (): string[] => fs.readdirSync('/run').filter((name) => name.startsWith(`${LAB_PREFIX}-`) || name.startsWith('k8xcp-'));

describe.skipIf(skip !== undefined)('npm run demo (the end-to-end lab)', () => {
  afterAll(async () => {
    // Whatever happened, leave no lab behind.
    if (Lab.leftovers(LAB_PREFIX).length > 0 || fs.existsSync(STATE_FILE)) await demo(['--down']);
  });

  it('passes the README\'s four checks, applies a change both ways and removes everything', { timeout: 300_000 }, async () => {
    const result = await demo(['--snapshot']);
    expect(result.stdout.split('\n')[0]).toMatch(/^mode: snapshot/);
    expect(result.stdout).toContain('Demo complete (mode: snapshot)');

    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    const lines = String(result.stdout).split('\n');
    // Four checks before the change, after dropping a source, and after putting it back.
    expect(lines.filter((line) => /^\s+ok\s/.test(line))).toHaveLength(12);
    expect(lines.filter((line) => line.includes('FAIL'))).toEqual([]);
    expect(result.stdout).toContain(`external server logged ${ADDRESSES.sourceIPs[0]}`);
    expect(result.stdout).toContain(`external server logged ${ADDRESSES.sourceIPs[1]}`);
    expect(result.stdout).toContain('my-pod1 answered and logged 10.244.0.50');
    // With the source dropped, my-pod2 has no way out and 192.168.122.201 no way in.
    expect(lines.filter((line) => /^\s+ok\s+error: /.test(line))).toHaveLength(2);
    expect(result.stdout).toContain('nothing left behind.');
    expect(Lab.leftovers(LAB_PREFIX)).toEqual([]);
  });

  it.skipIf(clusterSkip !== undefined)('in cluster mode runs the whole chain: the four checks, each edit of the ExternalService changes the traffic, and removes everything', { timeout: 900_000 }, async () => {
    const result = await demo([], 840_000);

    expect(result.exitCode, result.stderr).toBe(0);
    const lines = String(result.stdout).split('\n');
    expect(lines[0]).toMatch(/^mode: cluster/);
    expect(lines[0]).toContain('--snapshot');
    expect(lines.filter((line) => /^\s+ok\s/.test(line))).toHaveLength(12);
    expect(lines.filter((line) => line.includes('FAIL'))).toEqual([]);
    expect(result.stdout).toContain(`external server logged ${ADDRESSES.sourceIPs[0]}`);
    expect(result.stdout).toContain(`external server logged ${ADDRESSES.sourceIPs[1]}`);
    expect(lines.filter((line) => /traffic changed \d+ ms after the edit/.test(line))).toHaveLength(2);
    expect(result.stdout).toContain('Demo complete (mode: cluster)');
    expect(result.stdout).toContain('nothing left behind.');
    expect(Lab.leftovers(LAB_PREFIX)).toEqual([]);
  });

  it('in snapshot mode, leaves the lab up with --keep, working, until --down removes it', { timeout: 300_000 }, async () => {
    const kept = await demo(['--snapshot', '--keep']);
    expect(kept.exitCode).toBe(0);
    expect(kept.stdout.split('\n')[0]).toMatch(/^mode: snapshot/);
    expect(kept.stdout).toContain('npm run demo -- --down');
    expect(Lab.leftovers(LAB_PREFIX).length).toBeGreaterThan(0);

    const curl = await run('ip', ['netns', 'exec', `${LAB_PREFIX}pod1`, process.execPath, path.join(PACKAGE_ROOT, 'lab', 'http-get.mjs'), 'http://10.96.0.100:8000/'], {
      reject: false,
    });
    expect(String(curl.stdout).trim()).toBe(`external-server saw you as ${ADDRESSES.sourceIPs[0]}`);

    const again = await demo();
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain('a lab is already up');

    const down = await demo(['--down']);
    expect(down.exitCode).toBe(0);
    expect(Lab.leftovers(LAB_PREFIX)).toEqual([]);
    const ps = await run('ps', ['-C', 'ssh,sshd', '-o', 'args', '--no-headers'], { reject: false });
    expect(String(ps.stdout)).not.toContain('192.168.122.20');
  });

  it.skipIf(clusterSkip !== undefined)('in cluster mode, --keep leaves the whole chain running for kubectl until --down removes all of it', { timeout: 900_000 }, async () => {
    const foldersBefore = labRunFolders();
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'k8xd-kubectl-home-'));
    try {
      const kept = await demo(['--keep'], 840_000);
      expect(kept.exitCode, kept.stderr).toBe(0);
      const out = String(kept.stdout);
      expect(out.split('\n')[0]).toMatch(/^mode: cluster/);
      expect(out).toContain('Demo complete (mode: cluster)');
      expect(out).toContain('The lab stays up (--keep)');
      expect(out).toContain('npm run demo -- --down');
      const kubeconfig = /^\s*export KUBECONFIG=(\S+)$/m.exec(out)?.[1];
      const binDir = /^\s*export PATH=(\S+):\$PATH$/m.exec(out)?.[1];
      expect(kubeconfig).toBeDefined();
      expect(binDir).toBeDefined();

      // The demo's own process has ended: what runs now was left running on purpose.
      const state = JSON.parse(fs.readFileSync(STATE_FILE, 'utf8')) as { tempDir: string; cluster: { cluster: { plane: { dir: string }; nodeRootDir: string } } };
      const folders = [state.tempDir, state.cluster.cluster.plane.dir, state.cluster.cluster.nodeRootDir];
      const running = labProcesses(folders);
      const listing = [...running].map(([pid, args]) => `${pid} ${args}`).join('\n');
      for (const program of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'lab-node.js', 'relay.mjs', 'bin/gateway', 'bin/controller', 'bin/forwarder', 'sshd']) {
        expect([...running.values()].some((args) => args.includes(program)), `${program} runs:\n${listing}`).toBe(true);
      }

      // As a user would, with the printed lines.
      const env = { KUBECONFIG: kubeconfig, PATH: `${binDir}:${process.env.PATH ?? ''}`, HOME: home };
      const pods = await run('kubectl', ['get', 'pods', '-n', 'external-services'], { reject: false, env });
      expect(pods.stderr).toBe('');
      expect(String(pods.stdout)).toMatch(/^my-external-service1\s+\S+\s+Running\s/m);
      // The controller loop still runs: the checks the output names still pass.
      const check = /^\s*(ip netns exec \S+ node lab\/http-get\.mjs http:\/\/\S+:8000\/)\s+# my-pod1/m.exec(out)?.[1];
      expect(check).toBeDefined();
      const [, , , ns, , , url] = check!.split(' ');
      const answer = await run('ip', ['netns', 'exec', ns!, process.execPath, path.join(PACKAGE_ROOT, 'lab', 'http-get.mjs'), url!], { reject: false });
      expect(String(answer.stdout).trim()).toBe(`external-server saw you as ${ADDRESSES.sourceIPs[0]}`);

      const down = await demo(['--down']);
      expect(down.stderr).toBe('');
      expect(down.exitCode).toBe(0);
      expect(down.stdout).toContain('bin/controller teardown: done');
      expect(down.stdout).toContain('bin/gateway teardown: done');
      expect([...running].filter(([pid]) => fs.existsSync(`/proc/${pid}`)).map(([pid, args]) => `${pid} ${args}`)).toEqual([]);
      expect([...labProcesses(folders).values()]).toEqual([]);
      expect(Lab.leftovers(LAB_PREFIX)).toEqual([]);
      expect(mountsOf(folders)).toEqual([]);
      expect(folders.filter((folder) => fs.existsSync(folder))).toEqual([]);
      expect(labRunFolders().filter((name) => !foldersBefore.includes(name))).toEqual([]);
      expect(fs.existsSync(STATE_FILE)).toBe(false);
      const ps = await run('ps', ['-C', 'ssh,sshd', '-o', 'args', '--no-headers'], { reject: false });
      expect(String(ps.stdout)).not.toContain('192.168.122.20');
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it('with --failover, shows node B taking the IPs over when node A loses its link, with its timings, and removes everything', { timeout: 300_000 }, async () => {
    const result = await demo(['--failover']);

    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    const out = String(result.stdout);
    expect(out).toMatch(/node B holds 192\.168\.122\.200 after +\d+ ms/);
    expect(out).toMatch(/my-pod1 -> external server \(as \.200\) again after +\d+ ms/);
    expect(out).toMatch(/external server -> my-pod1 again after +\d+ ms/);
    // Node A holds both IPs at first, node B after the failover, and keeps them when A is back.
    expect(out.match(/192\.168\.122\.20[01] {2}MASTER/g)).toHaveLength(6);
    expect(out).toMatch(/192\.168\.122\.200 {2}FAULT/);
    expect(out).toContain('requests answered with a wrong source IP: 0 of');
    expect(out).toContain('100 ms samples with two holders of one IP: 0 of');
    expect(out).toContain('nothing left behind.');
    expect(Lab.leftovers(LAB_PREFIX)).toEqual([]);
  });
});
