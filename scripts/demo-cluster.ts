import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Check, ChecksTarget } from '../lab/checks.js';
import { startClusterChain, timeConfChange, waitForClusterChecks, type ClusterChain, type KeptClusterChain } from '../lab/cluster-chain.js';
import { README_SOURCES } from '../lab/connector.js';
import type { KubeBinaries } from '../lab/kube-binaries.js';
import { cleanUpOnInterrupt, Lab } from '../lab/netns.js';
import { ADDRESSES, LAB_PREFIX, PODS } from '../lab/topology.js';

/**
 * npm run demo in cluster mode: the whole chain as deployed (see lab/cluster-chain.ts), the
 * README's four checks, the change made by editing the ExternalService file and timed from the
 * edit to the traffic changing, then bin/controller teardown and bin/gateway teardown; or, with
 * `keep`, the whole chain left running for kubectl.
 */

export interface DemoOutput {
  say(text?: string): void;
  step(text: string): void;
  printChecks(checks: readonly Check[]): void;
  green(text: string): string;
}

export interface ClusterDemoOptions {
  /**
   * Leave the chain running after a successful demo: called with what removes it later (to be
   * recorded before this program ends).
   */
  keep?: (kept: KeptClusterChain) => void;
}

export interface ClusterDemoResult {
  ok: boolean;
  timings: number[];
  /** With `keep`, once the chain is left running: how to use it and remove it (lines to print). */
  keptUsage?: string[];
}

export async function clusterDemo(binaries: KubeBinaries, out: DemoOutput, options: ClusterDemoOptions = {}): Promise<ClusterDemoResult> {
  const lab = new Lab(LAB_PREFIX);
  const stopHandlingInterrupts = cleanUpOnInterrupt(async () => {
    try {
      await chain?.cluster.stop();
    } finally {
      await lab.cleanup();
    }
  });
  let chain: ClusterChain | undefined;
  let ok = false;
  const timings: number[] = [];
  try {
    out.step('Building the lab: a LAN, an external server, a gateway host, a control-plane host and a k8s node (network namespaces)');
    let started = performance.now();
    chain = await startClusterChain(lab, { binaries, keep: options.keep !== undefined, log: (line) => out.say(`  ${line}`) });
    out.say(`  control plane, lab node (kube-proxy, kubelet) and the app pods' objects up after ${Math.round(performance.now() - started)} ms`);
    out.say(`  bin/gateway runs on the gateway host ${ADDRESSES.gatewayHost}; its sshd accepts the controller's key`);

    out.step('Starting bin/controller (its loop) on the conf directory with the README\'s ExternalService');
    started = performance.now();
    chain.editConf(README_SOURCES);
    await chain.startController();
    const first = await waitForClusterChecks(lab, chain, README_SOURCES, 180_000, started);
    out.say(`  the controller created the forwarder pod, the lab node runs it, and traffic flows after ${Math.round(first.elapsedMs)} ms`);

    out.step('The README\'s four connectivity checks');
    out.printChecks(first.checks);
    if (!first.checks.every((check) => check.ok)) throw new Error('a connectivity check failed');

    out.step(`Changing the ExternalService: dropping the source ns2/my-service2 (${ADDRESSES.sourceIPs[1]}) in ${path.basename(chain.connector.confDir)}/`);
    const remaining = README_SOURCES.slice(0, 1);
    const dropped = await timeConfChange(lab, chain, remaining, 180_000);
    timings.push(dropped);
    out.say(`  traffic changed ${out.green(`${Math.round(dropped)} ms`)} after the edit`);
    const after = await waitForClusterChecks(lab, chain, remaining, 30_000);
    out.printChecks(after.checks);
    if (!after.checks.every((check) => check.ok)) throw new Error('a check failed after the change');

    out.step('Putting the source back');
    const back = await timeConfChange(lab, chain, README_SOURCES, 180_000);
    timings.push(back);
    out.say(`  traffic changed ${out.green(`${Math.round(back)} ms`)} after the edit`);
    const restored = await waitForClusterChecks(lab, chain, README_SOURCES, 30_000);
    out.printChecks(restored.checks);
    if (!restored.checks.every((check) => check.ok)) throw new Error('a check failed after restoring the source');
    ok = true;
    if (options.keep) {
      const target = await chain.checksTarget();
      const kept = await chain.detach();
      options.keep(kept);
      stopHandlingInterrupts();
      return { ok, timings, keptUsage: keptUsage(kept, target) };
    }
  } catch (error) {
    process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    for (const [name, handle] of [['controller', chain?.controller], ['gateway', chain?.connector.gateway], ['lab node', chain?.cluster.labNode]] as const) {
      if (handle) process.stderr.write(`--- last lines of the ${name}'s log ---\n${handle.output().split('\n').slice(-15).join('\n')}\n`);
    }
  }
  out.step('Tearing down: stopping the controller, bin/controller teardown, stopping the gateway, bin/gateway teardown, removing the lab');
  try {
    if (chain) {
      await chain.stopController();
      await chain.teardown();
    }
  } catch (error) {
    ok = false;
    process.stderr.write(`teardown: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  await chain?.cluster.stop().catch((error: unknown) => process.stderr.write(`stopping the cluster: ${String(error)}\n`));
  lab.adoptLeftovers();
  await lab.cleanup();
  const left = Lab.leftovers(LAB_PREFIX);
  out.say(left.length === 0 ? '  nothing left behind.' : `  left behind: ${left.join(', ')}`);
  if (left.length > 0) ok = false;
  stopHandlingInterrupts();
  return { ok, timings };
}

/** How to use a chain left running and how to remove it. */
function keptUsage(kept: KeptClusterChain, target: ChecksTarget): string[] {
  const { plane } = kept.cluster;
  const forwarderUrl = `http://${target.forwarder.serviceIP}:${target.forwarder.port}/`;
  const ns = target.forwarder.namespace;
  return [
    'The control plane, the lab node (kube-proxy and the pods), bin/gateway, the gateway host\'s sshd and the bin/controller loop keep running.',
    'Use the cluster from this shell (as its administrator):',
    `  export KUBECONFIG=${plane.adminKubeconfig}`,
    `  export PATH=${plane.kubernetesBinDir}:$PATH`,
    `  kubectl get pods -n ${ns}          # the forwarder pod the controller made, Running on ${plane.node.name}`,
    `  kubectl get pods,services -A -o wide`,
    `  kubectl get configmaps,serviceaccounts,roles,rolebindings -n ${ns}`,
    'The checks (from the repository):',
    `  ip netns exec ${target.pods.pod1.netns} node lab/http-get.mjs ${forwarderUrl}   # my-pod1 -> external server, seen as ${ADDRESSES.sourceIPs[0]}`,
    `  ip netns exec ${target.pods.pod2.netns} node lab/http-get.mjs ${forwarderUrl}   # my-pod2 -> external server, seen as ${ADDRESSES.sourceIPs[1]}`,
    `  ip netns exec ${target.external} node lab/http-get.mjs http://${ADDRESSES.sourceIPs[0]}/   # external server -> my-pod1 (it logs the forwarder pod, ${target.forwarder.podIP})`,
    `Edit ${path.join(kept.connector.confDir, `${PODS.forwarder.name}.yaml`)}: the controller loop applies the change.`,
    `Logs: ${kept.logsDir}/ (controller, gateway), ${path.join(plane.dir, 'logs')}/ (control plane, lab-node, kube-proxy), the pods' in ${path.join(kept.cluster.nodeRootDir, 'pods')}/*/containers/`,
    'Remove it with: npm run demo -- --down',
  ];
}
