import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Lab, PACKAGE_ROOT } from '../../lab/netns.js';
import { run } from '../../lib/exec.js';
import { preflightProblems } from '../../lab/preflight.js';
import { ADDRESSES, LAB_PREFIX } from '../../lab/topology.js';
import { binaryProblems, kubeBinaries } from '../../lab/kube-binaries.js';

const problems = preflightProblems();
const skip = problems.length > 0 ? problems.join(' ') : undefined;
if (skip) console.warn(`system tests skipped: ${skip}`);

const missingBinaries = await binaryProblems(kubeBinaries());
const clusterSkip = skip ?? (missingBinaries.length > 0 ? `the control-plane binaries are not built (npm run cluster:build): ${missingBinaries[0]}` : undefined);
if (clusterSkip && !skip) console.warn(`cluster-mode demo skipped: ${clusterSkip}`);

const DEMO = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'demo.js');
const demo = (args: string[] = [], timeoutMs = 240_000) =>
  run(process.execPath, [DEMO, ...args], { reject: false, timeoutMs, env: { NO_COLOR: '1' } });

describe.skipIf(skip !== undefined)('npm run demo (the end-to-end lab)', () => {
  afterAll(async () => {
    // Whatever happened, leave no lab behind.
    if (Lab.leftovers(LAB_PREFIX).length > 0) await demo(['--down']);
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

  it('leaves the lab up with --keep, working, until --down removes it', { timeout: 300_000 }, async () => {
    const kept = await demo(['--keep']);
    expect(kept.exitCode).toBe(0);
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
