import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KUBERNETES_VERSION } from '../../lab/kube-binaries.js';
import type { KubeList } from '../../lab/kube-api.js';
import { ROOT, tempDir } from '../helpers/cli.js';
import { cluster, clusterSkipReason, createApp, deleteNamespaces, endpointSlices, kubectl, sliceEndpoints } from '../helpers/cluster.js';

/** The lab's control plane itself: what the controller tests rely on, and its start and removal. */

/** Processes whose command line mentions `text` (the control plane's folder is in every one's). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Runs `node dist/scripts/cluster.js ARGS`, collecting its output. */
function clusterScript(args: readonly string[]): { output: () => string; exited: Promise<number | null>; kill: (signal: NodeJS.Signals) => void } {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/scripts/cluster.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { output: () => output, exited, kill: (signal) => child.kill(signal) };
}

describe.skipIf(clusterSkipReason !== undefined)('the lab control plane', () => {
  afterAll(async () => {
    await deleteNamespaces('cp-apps', 'cp-doomed');
  });

  it('runs the pinned Kubernetes version, with kubectl of the same version and one Ready node without taints', async () => {
    const version = await cluster().version();
    expect(version).toEqual({ client: KUBERNETES_VERSION, server: KUBERNETES_VERSION });
    const nodes = await cluster().admin.get<KubeList>('/api/v1/nodes');
    expect(nodes.items.map((node) => node.metadata.name)).toEqual(['lab-node']);
    const node = nodes.items[0]!;
    expect(node.spec?.taints).toBeUndefined();
    expect((node.status?.conditions as { type: string; status: string }[]).find((condition) => condition.type === 'Ready')?.status).toBe('True');
  });

  it('authenticates a kubeconfig made for a user as that user and its groups, with only what RBAC grants them', async () => {
    const kubeconfig = await cluster().userKubeconfig('alice', ['team-a']);
    const whoami = await kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
    const status = JSON.parse(whoami.stdout) as { status: { userInfo: { username: string; groups: string[] } } };
    expect(status.status.userInfo.username).toBe('alice');
    expect(status.status.userInfo.groups).toEqual(expect.arrayContaining(['team-a', 'system:authenticated']));
    const forbidden = await kubectl(['get', 'pods', '-n', 'default'], { kubeconfig, reject: false });
    expect(forbidden.exitCode).not.toBe(0);
    expect(forbidden.stderr).toContain('User "alice" cannot list resource "pods"');
  });

  it('publishes EndpointSlices from pods the lab node reports through pods/status, across several slices, with readiness', async () => {
    await createApp('cp-apps', 'web', [
      { name: 'web-1', ip: '10.244.1.1' },
      { name: 'web-2', ip: '10.244.1.2' },
      { name: 'web-3', ip: '10.244.1.3' },
      { name: 'web-4', ip: '10.244.1.4', ready: false },
    ]);
    expect((await sliceEndpoints('cp-apps', 'web')).sort()).toEqual(['10.244.1.1:true', '10.244.1.2:true', '10.244.1.3:true', '10.244.1.4:false']);
    expect((await endpointSlices('cp-apps', 'web')).length).toBeGreaterThan(1);
  });

  it('finishes deleting a namespace, the pods bound to the node included', async () => {
    await createApp('cp-doomed', 'db', [{ name: 'db-1', ip: '10.244.2.1' }]);
    await deleteNamespaces('cp-doomed');
    expect(await cluster().admin.find('/api/v1/namespaces/cp-doomed')).toBeUndefined();
  });

  it('npm run cluster -- up leaves a control plane kubectl reaches through the printed KUBECONFIG; down removes every process and file', async () => {
    const work = tempDir('k8s-ext-cluster-up-');
    const state = path.join(work.dir, 'state.json');
    try {
      const up = clusterScript(['up', '--state', state]);
      expect(await up.exited, up.output()).toBe(0);
      const kubeconfig = /^ {2}export KUBECONFIG=(\S+)$/m.exec(up.output())?.[1];
      expect(kubeconfig, up.output()).toBeDefined();
      const info = JSON.parse(fs.readFileSync(state, 'utf8')) as { dir: string; pids: number[] };
      const nodes = await kubectl(['get', 'nodes', '-o', 'name'], { kubeconfig });
      expect(nodes.stdout.trim()).toBe('node/lab-node');
      // etcd, kube-apiserver, kube-controller-manager, kube-scheduler.
      expect(processesMentioning(info.dir)).toHaveLength(4);

      const down = clusterScript(['down', '--state', state]);
      expect(await down.exited, down.output()).toBe(0);
      expect(fs.existsSync(info.dir)).toBe(false);
      expect(fs.existsSync(state)).toBe(false);
      expect(processesMentioning(info.dir)).toEqual([]);
    } finally {
      const leftover = fs.existsSync(state) ? clusterScript(['down', '--state', state]) : undefined;
      await leftover?.exited;
      work.remove();
    }
  });

  it('Ctrl-C while the control plane starts stops every process and removes its folder', async () => {
    const work = tempDir('k8s-ext-cluster-int-');
    try {
      const up = clusterScript(['up', '--foreground', '--state', path.join(work.dir, 'state.json')]);
      await expect.poll(() => /kube-apiserver \S+ on /.test(up.output()), { timeout: 60_000, interval: 50 }).toBe(true);
      const dir = /files in (\S+)/.exec(up.output())?.[1];
      expect(dir).toBeDefined();
      // etcd and kube-apiserver are running.
      await expect.poll(() => processesMentioning(dir!).length, { timeout: 10_000, interval: 50 }).toBe(2);
      up.kill('SIGINT');
      expect(await up.exited).toBe(130);
      expect(fs.existsSync(dir!)).toBe(false);
      await expect.poll(() => processesMentioning(dir!), { timeout: 10_000 }).toEqual([]);
    } finally {
      work.remove();
    }
  });
});
