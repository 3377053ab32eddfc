import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Check } from '../../lab/checks.js';
import { startClusterChain, waitForClusterChecks, type ClusterChain } from '../../lab/cluster-chain.js';
import { README_SOURCES } from '../../lab/connector.js';
import type { AuditEvent } from '../../lab/control-plane.js';
import { binaryProblems, kubeBinaries } from '../../lab/kube-binaries.js';
import { podNetnsName } from '../../lab/kubelet.js';
import { Lab, PACKAGE_ROOT, waitFor } from '../../lab/netns.js';
import { preflightProblems } from '../../lab/preflight.js';
import { PODS } from '../../lab/topology.js';
import { runningUnderCi } from '../helpers/ci.js';
import { hostSnapshot, leftoversBetween, namedNetnsIds, type HostSnapshot, type LabTraces, type Leftovers } from '../helpers/host-snapshot.js';

/**
 * The whole chain in cluster mode (lab/cluster-chain.ts), started once: the control plane, the
 * lab node, the app pods, bin/gateway and the bin/controller loop, with the README's
 * ExternalService. The controller brings back a forwarder pod that was deleted; a restarted
 * controller changes nothing; and the chain's teardown leaves nothing on the machine.
 */

const PREFIX = 'k8xcc';
const CONTROLLER_USER = 'k8s-ext-controller';
const NAMESPACE = 'external-services';
const FORWARDER = PODS.forwarder.name;
const POD_PATH = `/api/v1/namespaces/${NAMESPACE}/pods/${FORWARDER}`;
const MUTATING = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

const binaries = kubeBinaries();
const problems = [...preflightProblems(), ...(await binaryProblems(binaries)).slice(0, 1).map((problem) => `the control-plane binaries are not built (npm run cluster:build): ${problem}`)];
const skip = problems.length > 0 ? problems.join(' ') : undefined;
if (skip !== undefined) {
  if (runningUnderCi()) throw new Error(`the chain tests must run under CI, but: ${skip}`);
  console.warn(`chain tests skipped: ${skip}`);
}

function failed(checks: readonly Check[]): string[] {
  return checks.filter((check) => !check.ok).map((check) => `${check.title}: expected ${check.expected}, saw ${check.seen}`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

describe.skipIf(skip !== undefined)('the whole chain in cluster mode', () => {
  let before: HostSnapshot;
  let lab: Lab;
  let chain: ClusterChain | undefined;
  let tornDown = false;
  // The lab's network namespaces (pods come and go): looked at when the chain is up, after the
  // forwarder pod is made again, and before the teardown.
  const labNetns = new Set<string>();
  const noteLabNetns = (): void => {
    for (const id of namedNetnsIds(PREFIX)) labNetns.add(id);
  };
  const traces: LabTraces = {
    // The lab's own names, and the control plane's folder (lab/control-plane.ts).
    prefixes: [PREFIX, 'k8xcp-'],
    // The lab's programs that run in the host's network namespace (the API relay, the lab node) and
    // the control plane's; not the whole checkout, whose CLI tests may run meanwhile.
    paths: [`${path.join(PACKAGE_ROOT, 'lab')}/`, `${path.join(PACKAGE_ROOT, 'dist', 'lab')}/`, path.dirname(binaries.path('kube-apiserver')), path.dirname(binaries.path('etcd'))],
    addresses: ['192.168.122.', '10.244.', '10.96.'],
    netnsIds: labNetns,
  };

  const controllerLog = (): string => {
    try {
      return fs.readFileSync(path.join(chain!.logsDir, 'controller.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const forwarderPod = async (): Promise<{ uid: string; deleting: boolean } | undefined> => {
    const pod = await chain!.cluster.plane.access.admin.find(POD_PATH);
    return pod === undefined ? undefined : { uid: pod.metadata.uid ?? '', deleting: pod.metadata.deletionTimestamp !== undefined };
  };

  beforeAll(async () => {
    before = await hostSnapshot();
    lab = new Lab(PREFIX);
    const started = performance.now();
    chain = await startClusterChain(lab, { binaries, logLevel: 'debug' });
    chain.editConf(README_SOURCES);
    await chain.startController();
    const first = await waitForClusterChecks(lab, chain, README_SOURCES, 180_000);
    noteLabNetns();
    console.log(`chain up and the four checks pass after ${seconds(performance.now() - started)}`);
    if (failed(first.checks).length > 0) throw new Error(`the chain does not work at start: ${failed(first.checks).join('; ')}`);
  }, 420_000);

  afterAll(async () => {
    // A failed or skipped teardown test: remove the chain anyway, then whatever it left behind.
    if (!tornDown && chain) {
      await chain.stopController().catch(() => undefined);
      await chain.teardown().catch((error: unknown) => console.warn(`chain teardown: ${String(error)}`));
      await chain.cluster.stop().catch((error: unknown) => console.warn(`stopping the cluster: ${String(error)}`));
    }
    if (lab) {
      lab.adoptLeftovers();
      await lab.cleanup();
    }
    if (before) {
      // The folders of this run's labs (the lab node's, the node's pods); processes the lab made
      // went with its network namespaces and process groups.
      const left = leftoversBetween(before, await hostSnapshot(), traces);
      for (const [dir, names] of [['/run', left.run], ['/tmp', left.tmp]] as const) {
        for (const name of names.filter((entry) => entry.startsWith(`${PREFIX}-`))) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      }
    }
  }, 180_000);

  it('recreates the forwarder pod after it is deleted: a new pod (new uid) that the lab node runs, and the four checks pass again', { timeout: 300_000 }, async () => {
    const old = await forwarderPod();
    expect(old?.deleting).toBe(false);
    const oldNetns = podNetnsName(PREFIX, old!.uid);
    expect(Lab.leftovers(PREFIX)).toContain(oldNetns);
    const logStart = controllerLog().length;
    const started = performance.now();

    // kubectl waits until the pod is gone: the lab node stopped it and finished its deletion.
    const deleted = await chain!.cluster.kubectl(['delete', 'pod', FORWARDER, '-n', NAMESPACE]);
    expect(deleted.stdout).toContain(`pod "${FORWARDER}" deleted`);
    expect(Lab.leftovers(PREFIX)).not.toContain(oldNetns);
    const goneAfter = performance.now() - started;

    const created = await waitFor(
      async () => {
        const pod = await forwarderPod();
        return pod !== undefined && pod.uid !== old!.uid ? pod : undefined;
      },
      60_000,
      'the controller to create the forwarder pod again',
      chain!.controller,
    );
    const createdAfter = performance.now() - started;
    expect(created.deleting).toBe(false);
    expect(controllerLog().slice(logStart)).toContain(`create forwarder pod ${FORWARDER} (missing)`);

    const target = await chain!.checksTarget();
    expect(Lab.leftovers(PREFIX)).toContain(podNetnsName(PREFIX, created.uid));
    noteLabNetns();
    const { checks } = await waitForClusterChecks(lab, chain!, README_SOURCES, 120_000);
    expect(failed(checks)).toEqual([]);
    expect(checks).toHaveLength(4);
    expect(checks[2]?.seen).toContain(target.forwarder.podIP);
    // The lab node stopped the old pod as kubelet does: its forwarder got SIGTERM and exited by itself.
    expect(chain!.cluster.labNode.output()).toContain(`kubelet: pod ${NAMESPACE}/${FORWARDER} container forwarder exited with code 0`);
    console.log(
      `forwarder pod deleted after ${seconds(goneAfter)}, created again after ${seconds(createdAfter)}, the four checks pass again after ${seconds(performance.now() - started)}`,
    );
  });

  it('survives a controller restart with nothing changed: no write to the API by the controller, no delivery to the gateway, the same forwarder pod, and the checks pass', { timeout: 180_000 }, async () => {
    const pod = await forwarderPod();
    const rulesFile = chain!.connector.rulesFile;
    const rulesBefore = fs.statSync(rulesFile);

    await chain!.stopController();
    const logStart = controllerLog().length;
    const restartedAt = Date.now();
    const restarted = await chain!.startController();
    // Two whole cycles of the restarted controller: the one at start and the first resync.
    const cycles = await waitFor(
      () => {
        const done = controllerLog().slice(logStart).split('\n').filter((line) => line.includes(' cycle done: '));
        return done.length >= 2 ? done : undefined;
      },
      60_000,
      'two cycles of the restarted controller',
      restarted,
    );
    // Each is checked (soft), so that a failure names every way the restart changed something.
    expect.soft(cycles.map((line) => line.slice(line.indexOf('cycle done: ')))).toEqual(['cycle done: nothing to change', 'cycle done: nothing to change']);

    const since = chain!.cluster.plane.access.auditEvents().filter((event) => event.user.username === CONTROLLER_USER && Date.parse(event.stageTimestamp ?? '') >= restartedAt);
    const request = (event: AuditEvent): string => `${event.verb} ${event.requestURI} (${event.responseStatus?.code ?? '?'})`;
    // The audit log saw the restarted controller read the cluster, and write nothing.
    expect.soft(since.filter((event) => event.verb === 'list').length).toBeGreaterThan(0);
    expect.soft(since.filter((event) => MUTATING.has(event.verb)).map(request)).toEqual([]);

    // No scp and rename to the gateway node: the same rules file, and no temporary copy beside it.
    const rulesAfter = fs.statSync(rulesFile);
    expect.soft({ ino: rulesAfter.ino, mtimeMs: rulesAfter.mtimeMs }).toEqual({ ino: rulesBefore.ino, mtimeMs: rulesBefore.mtimeMs });
    expect.soft(fs.readdirSync(path.dirname(rulesFile)).filter((name) => name.startsWith(`${path.basename(rulesFile)}.tmp`))).toEqual([]);

    expect.soft(await forwarderPod()).toEqual(pod);
    const { checks } = await waitForClusterChecks(lab, chain!, README_SOURCES, 60_000);
    expect(failed(checks)).toEqual([]);
  });

  it('leaves nothing behind after its teardown: no process, network namespace, address, link, iptables rule, mount, file or folder', { timeout: 300_000 }, async () => {
    tornDown = true;
    noteLabNetns();
    const started = performance.now();
    await chain!.stopController();
    const output = await chain!.teardown();
    expect(output).toContain('teardown done');
    await chain!.cluster.stop();
    await lab.cleanup();
    console.log(`chain torn down in ${seconds(performance.now() - started)}`);

    const left = leftoversBetween(before, await hostSnapshot(), traces);
    const none: Leftovers = { netns: [], processes: [], run: [], tmp: [], mounts: [], links: [], addresses: [], iptables: [] };
    expect(left).toEqual(none);
  });
});
