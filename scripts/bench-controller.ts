import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { run } from '../lib/exec.js';
import { clusterFor, confText, seedStandin } from './bench-genrule.js';

/**
 * The controller's cycle against the kubectl, scp and ssh stand-ins (there is no API server
 * here): the first cycle (creates everything), then cycles until nothing changes, then one
 * steady-state cycle, whose reads and writes are what a running controller costs every INTERVAL.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ControllerMeasurement {
  externalServices: number;
  firstCycle: { kubectlReads: number; kubectlWrites: number; scp: number; ms: number };
  cyclesToConverge: number;
  steadyCycle: { kubectlReads: number; kubectlWrites: number; scp: number; ssh: number; ms: number };
}

interface Call {
  program: string;
  argv: string[];
}

function calls(log: string): Call[] {
  if (!fs.existsSync(log)) return [];
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Call);
}

const isRead = (call: Call): boolean => call.program === 'kubectl' && call.argv[0] === 'get';

async function measure(count: number): Promise<ControllerMeasurement> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-controller-'));
  try {
    const confDir = path.join(work, 'conf');
    const kubeDir = path.join(work, 'kube');
    const scpDir = path.join(work, 'gateway');
    const log = path.join(work, 'calls.jsonl');
    const key = path.join(work, 'id_rsa');
    fs.mkdirSync(confDir);
    fs.mkdirSync(scpDir);
    fs.writeFileSync(key, 'not a real key\n');
    for (let i = 0; i < count; i++) fs.writeFileSync(path.join(confDir, `es-${String(i).padStart(4, '0')}.yaml`), confText(i));
    seedStandin(kubeDir, clusterFor(count));
    const env = {
      PATH: [path.join(ROOT, 'test/bin/controller'), path.join(ROOT, 'test/bin'), process.env.PATH ?? ''].join(path.delimiter),
      KUBE_STANDIN_DIR: kubeDir,
      SCP_STANDIN_DIR: scpDir,
      STANDIN_LOG: log,
      SSH_KEY_PATH: key,
      GATEWAY_NODE_IP: '192.0.2.10',
      NO_COLOR: '1',
    };
    const cycle = async () => {
      fs.rmSync(log, { force: true });
      const started = performance.now();
      const result = await run(path.join(ROOT, 'bin/controller'), ['--once', confDir], { env, timeoutMs: 300_000, reject: false });
      const ms = performance.now() - started;
      if (!result.ok) throw new Error(`controller --once failed: ${result.stderr}`);
      const made = calls(log);
      return {
        kubectlReads: made.filter(isRead).length,
        kubectlWrites: made.filter((call) => call.program === 'kubectl' && !isRead(call)).length,
        scp: made.filter((call) => call.program === 'scp').length,
        ssh: made.filter((call) => call.program === 'ssh').length,
        ms: Math.round(ms),
      };
    };
    const first = await cycle();
    let cyclesToConverge = 1;
    let steady = await cycle();
    while (steady.kubectlWrites + steady.scp + steady.ssh > 0 && cyclesToConverge < 5) {
      cyclesToConverge++;
      steady = await cycle();
    }
    return {
      externalServices: count,
      firstCycle: { kubectlReads: first.kubectlReads, kubectlWrites: first.kubectlWrites, scp: first.scp, ms: first.ms },
      cyclesToConverge,
      steadyCycle: steady,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export async function benchController(counts: readonly number[]): Promise<ControllerMeasurement[]> {
  const results: ControllerMeasurement[] = [];
  for (const count of counts) results.push(await measure(count));
  return results;
}
