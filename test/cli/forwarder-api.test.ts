import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readStandinLog, ROOT, runBin, standinPath, tempDir } from '../helpers/cli.js';
import { forwarderData, writeConfigMap } from '../helpers/forwarder-lab.js';

// The forwarder's rules through the API (RULES_CONFIGMAP): the kubectl stand-in of
// test/bin/forwarder serves and watches one ConfigMap; the data file is the mounted volume.

const STANDINS = path.join(ROOT, 'test/bin/forwarder');
const NAME = 'my-external-service1';
const CONFIGMAP = 'external-service-data-my-external-service1';
const FILE_TUNNEL = '2049:192.168.122.139:8000,192.168.122.200';
const API_TUNNEL = '2050:192.168.122.139:8000,192.168.122.201';
const NEWER_API_TUNNEL = '2051:192.168.122.139:8000,192.168.122.202';
const NEWER_FILE_TUNNEL = '2052:192.168.122.139:8000,192.168.122.203';

let work: ReturnType<typeof tempDir>;
let state: string;
let configDir: string;
let logFile: string;
let env: NodeJS.ProcessEnv;

function runningTunnels(): string[] {
  const procs = path.join(state, 'procs');
  return fs.readdirSync(procs).map((pid) => fs.readFileSync(path.join(procs, pid), 'utf8').trim().split(' ').filter((word) => word !== '--').slice(-2).join(','));
}

let resourceVersion: number;
/** The ConfigMap as the API server holds it (the stand-in serves and watches this file). */
function setApiConfigMap(tunnel: string | undefined): void {
  const file = path.join(state, 'api', 'configmap.json');
  if (tunnel === undefined) {
    fs.rmSync(file, { force: true });
    return;
  }
  resourceVersion++;
  const object = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: CONFIGMAP, namespace: 'external-services', resourceVersion: String(resourceVersion) },
    data: { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': [tunnel] }) },
  };
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(object, null, 2));
  fs.renameSync(`${file}.tmp`, file);
}

function setApiReachable(reachable: boolean): void {
  const flag = path.join(state, 'api', 'unreachable');
  if (reachable) fs.rmSync(flag, { force: true });
  else fs.writeFileSync(flag, '');
}

function setMountedFile(tunnel: string): void {
  writeConfigMap(configDir, { 'data.yaml': forwarderData(NAME, { 'ssh-tunnel': [tunnel] }) });
}

beforeEach(() => {
  work = tempDir('k8xfw-api-');
  state = path.join(work.dir, 'state');
  configDir = path.join(work.dir, 'config');
  logFile = path.join(work.dir, 'calls.jsonl');
  fs.mkdirSync(path.join(state, 'procs'), { recursive: true });
  fs.mkdirSync(path.join(state, 'api'), { recursive: true });
  resourceVersion = 100;
  setMountedFile(FILE_TUNNEL);
  setApiConfigMap(API_TUNNEL);
  env = {
    PATH: standinPath(STANDINS),
    FORWARDER_STANDIN_DIR: state,
    STANDIN_LOG: logFile,
    EXTERNAL_SERVICE_NAME: NAME,
    DATA_FILE: path.join(configDir, 'data.yaml'),
    RULES_CONFIGMAP: CONFIGMAP,
    RULES_CONFIGMAP_KEY: 'data.yaml',
    POD_NAMESPACE: 'external-services',
  };
});

afterEach(() => {
  work.remove();
});

describe('forwarder --once with RULES_CONFIGMAP', () => {
  it("applies the API's copy of its ConfigMap, read with kubectl in the pod's namespace, rather than the mounted file", async () => {
    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.stderr).not.toMatch(/ERROR|WARN/);
    expect(result.exitCode).toBe(0);
    expect(runningTunnels()).toEqual([API_TUNNEL]);
    expect(readStandinLog(logFile).find((call) => call.program === 'kubectl')?.argv).toEqual([
      'get', 'configmap', CONFIGMAP, '-n', 'external-services', '-o', 'json',
    ]);
    expect(result.stderr).toContain(`rules from configmap external-services/${CONFIGMAP} key data.yaml through the API, resourceVersion 101`);
  });

  it('applies the mounted file, with a warning naming the reason, when the API cannot be reached', async () => {
    setApiReachable(false);

    const result = await runBin('forwarder', ['--once'], { env });

    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/WARN .*cannot read configmap external-services\/external-service-data-my-external-service1 key data\.yaml through the API; using the data file .*connection refused/);
    expect(runningTunnels()).toEqual([FILE_TUNNEL]);
  });

  it('uses the mounted file and never calls kubectl without RULES_CONFIGMAP', async () => {
    const result = await runBin('forwarder', ['--once'], { env: { ...env, RULES_CONFIGMAP: '' } });

    expect(result.exitCode).toBe(0);
    expect(runningTunnels()).toEqual([FILE_TUNNEL]);
    expect(readStandinLog(logFile).filter((call) => call.program === 'kubectl')).toEqual([]);
  });

  it('exits 2 naming the variable when RULES_CONFIGMAP is not a ConfigMap name', async () => {
    const result = await runBin('forwarder', ['--once'], { env: { ...env, RULES_CONFIGMAP: 'Bad_Name' } });

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('RULES_CONFIGMAP: "Bad_Name" is not a ConfigMap name');
  });
});

describe('forwarder status with RULES_CONFIGMAP', () => {
  it('names the source of the rules: the API, or the data file and why not the API', async () => {
    const fromApi = await runBin('forwarder', ['status'], { env });
    expect(fromApi.stdout).toContain(`rules: configmap external-services/${CONFIGMAP} key data.yaml through the API, resourceVersion 101`);

    setApiReachable(false);
    const fromFile = await runBin('forwarder', ['status'], { env });
    expect(fromFile.stdout).toContain(`rules: data file ${env.DATA_FILE} (configmap external-services/${CONFIGMAP} key data.yaml cannot be read through the API: Unable to connect`);
  });
});

describe('forwarder (loop) with RULES_CONFIGMAP', () => {
  it("follows the API's copy at once while the mounted file lags, keeps its last copy when the API goes away, and takes the file once it changes", async () => {
    const child = spawn(path.join(ROOT, 'bin/forwarder'), [], { env: { ...env, INTERVAL: '60', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => runningTunnels(), { timeout: 20_000 }).toEqual([API_TUNNEL]);
      expect(readStandinLog(logFile).find((call) => call.program === 'kubectl')?.argv).toEqual([
        'get', 'configmap', CONFIGMAP, '-n', 'external-services', '--watch', '--output-watch-events', '-o', 'json',
      ]);

      // A change through the API applies without any change to the mounted file (INTERVAL is 60 s).
      setApiConfigMap(NEWER_API_TUNNEL);
      await expect.poll(() => runningTunnels(), { timeout: 10_000, interval: 25 }).toEqual([NEWER_API_TUNNEL]);

      // The API goes away: the last copy stays in force, although the mounted file is older.
      setApiReachable(false);
      await expect.poll(() => stderr, { timeout: 10_000 }).toMatch(/WARN .*no watch of configmap .* using the mounted data file meanwhile/);
      expect(runningTunnels()).toEqual([NEWER_API_TUNNEL]);

      // kubelet writes the volume: a file written after the last copy is at least as new.
      setMountedFile(NEWER_FILE_TUNNEL);
      await expect.poll(() => runningTunnels(), { timeout: 10_000, interval: 25 }).toEqual([NEWER_FILE_TUNNEL]);
      expect(stderr).toContain(`rules from data file ${env.DATA_FILE}`);

      // The API is back: its copy is in force again.
      setApiReachable(true);
      await expect.poll(() => runningTunnels(), { timeout: 20_000, interval: 50 }).toEqual([NEWER_API_TUNNEL]);
      expect(stderr).toMatch(/watching configmap external-services\/external-service-data-my-external-service1 key data\.yaml through the API/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 90_000);

  it("warns once per outage, without klog's prefix, although kubectl's error lines carry a new time on every retry", async () => {
    fs.writeFileSync(path.join(state, 'api', 'unreachable'), 'klog\n');
    const child = spawn(path.join(ROOT, 'bin/forwarder'), [], { env: { ...env, INTERVAL: '60', NO_COLOR: '1', LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const reports = (): string[] => stderr.split('\n').filter((line) => line.includes(`no watch of configmap external-services/${CONFIGMAP}`));
    try {
      // Three failed watches, each reported (as a warning or, when nothing is new, at debug level).
      await expect.poll(() => reports().length, { timeout: 20_000 }).toBeGreaterThanOrEqual(3);

      const warnings = reports().filter((line) => / WARN /.test(line));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(
          'error="couldn\'t get current server API group list: Get \\"https://10.96.0.1:443/api?timeout=32s\\": dial tcp 10.96.0.1:443: connect: connection refused"',
      );
      expect(stderr).not.toMatch(/memcache\.go/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 60_000);

  it('uses the mounted file while the ConfigMap is deleted, and the API again once it is back', async () => {
    const child = spawn(path.join(ROOT, 'bin/forwarder'), [], { env: { ...env, INTERVAL: '60', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => runningTunnels(), { timeout: 20_000 }).toEqual([API_TUNNEL]);

      setApiConfigMap(undefined);
      await expect.poll(() => runningTunnels(), { timeout: 10_000, interval: 25 }).toEqual([FILE_TUNNEL]);

      setApiConfigMap(NEWER_API_TUNNEL);
      await expect.poll(() => runningTunnels(), { timeout: 10_000, interval: 25 }).toEqual([NEWER_API_TUNNEL]);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 60_000);
});
