import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, Option } from 'commander';
import { Chalk } from 'chalk';
import { colorWanted } from '../lib/log.js';
import { cleanUpOnInterrupt, Lab, stopProcessGroup } from '../lab/netns.js';
import { ADDRESSES, LAB_PREFIX, buildTopology, httpGet, type Topology } from '../lab/topology.js';
import { README_SOURCES, generateRules, prepareConnector, publishRules, startForwarder, startGateway, teardownGateway, type Connector } from '../lab/connector.js';
import { applyChange, snapshotTarget, waitForChecks, type Check } from '../lab/checks.js';
import { preflightProblems } from '../lab/preflight.js';
import { binaryProblems, kubeBinaries } from '../lab/kube-binaries.js';
import { clusterDemo } from './demo-cluster.js';
import { removeKeptClusterChain, type KeptClusterChain } from '../lab/cluster-chain.js';
import { stopFailoverLab, type FailoverLab } from '../lab/failover.js';
import { failoverDemo } from './demo-failover.js';

/**
 * npm run demo: the original README's setup on one Linux machine, in network namespaces, with
 * real traffic. See lab/topology.ts for the picture.
 */

const STATE_FILE = '/run/k8s-ext-connector-demo.json';
const chalk = new Chalk({ level: colorWanted(process.stdout) ? 1 : 0 });
const say = (text = ''): void => void process.stdout.write(`${text}\n`);
const step = (text: string): void => say(`\n${chalk.bold.cyan('==>')} ${chalk.bold(text)}`);

function printChecks(checks: readonly Check[]): void {
  checks.forEach((check, index) => {
    say(`  ${index + 1}. ${check.title}`);
    say(`     ${chalk.dim(`$ ${check.command}`)}`);
    say(`     ${check.ok ? chalk.green('ok  ') : chalk.red('FAIL')} ${check.seen}${check.ok ? '' : chalk.red(` (expected: ${check.expected})`)}`);
  });
}

/** What a lab left running by --keep is (STATE_FILE): the snapshot lab's, plus the chain's in cluster mode. */
interface KeptState {
  mode?: 'snapshot' | 'cluster';
  tempDir?: string;
  pids?: number[];
  cluster?: KeptClusterChain;
}

async function down(): Promise<boolean> {
  // Removes a lab left running by --keep: its processes, namespaces and files.
  let state: KeptState = {};
  try {
    state = JSON.parse(fs.readFileSync(STATE_FILE, 'utf8')) as KeptState;
  } catch {
    /* no state: remove by name only */
  }
  const lab = new Lab(LAB_PREFIX);
  if (state.cluster) {
    // The product's own teardown first, as the demo does, then the cluster under it.
    const problems = await removeKeptClusterChain(lab, state.cluster, (line) => say(`  ${line}`));
    for (const problem of problems) process.stderr.write(`demo --down: ${problem}\n`);
  }
  // Whatever else the lab started (its servers): ended before --down returns.
  await Promise.all((state.pids ?? []).map((pid) => stopProcessGroup(pid)));
  lab.adoptLeftovers();
  await lab.cleanup();
  if (state.tempDir) fs.rmSync(state.tempDir, { recursive: true, force: true });
  fs.rmSync(STATE_FILE, { force: true });
  const left = Lab.leftovers(LAB_PREFIX);
  if (left.length > 0) {
    process.stderr.write(`demo --down: left behind: ${left.join(', ')}\n`);
    return false;
  }
  say(`lab removed (${state.cluster ? 'the control plane, the lab node and its pods, ' : ''}namespaces ${LAB_PREFIX}*, their processes and files).`);
  return true;
}

function writeState(state: KeptState): void {
  fs.writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/** Whether this machine can run a lab now: the preflight finds nothing missing and no lab is up. Says why not. */
function labCanStart(): boolean {
  const problems = preflightProblems();
  if (problems.length > 0) {
    for (const problem of problems) process.stderr.write(`demo: ${problem}\n`);
    return false;
  }
  if (Lab.leftovers(LAB_PREFIX).length > 0) {
    process.stderr.write(`demo: a lab is already up (namespaces ${Lab.leftovers(LAB_PREFIX).join(', ')}). Remove it with: npm run demo -- --down\n`);
    return false;
  }
  return true;
}

async function demo(keep: boolean, forceSnapshot: boolean): Promise<boolean> {
  if (!labCanStart()) return false;
  const binaries = kubeBinaries();
  const missing = await binaryProblems(binaries);
  if (missing.length === 0 && !forceSnapshot) {
    say('mode: cluster: the whole chain in a real cluster (control plane, lab node, controller loop); `npm run demo -- --snapshot` runs the snapshot lab instead');
    const keepChain = keep ? (kept: KeptClusterChain): void => writeState({ mode: 'cluster', tempDir: kept.tempDir, pids: kept.pids, cluster: kept }) : undefined;
    const { ok, timings, keptUsage } = await clusterDemo(binaries, { say, step, printChecks, green: (text) => chalk.green(text) }, { keep: keepChain });
    if (ok) {
      say(
        `\n${chalk.green.bold('Demo complete (mode: cluster):')} pods reached the external server as ${ADDRESSES.sourceIPs.join(' and ')}, the external server ` +
          `reached the pods through the same IPs, and each edit of the ExternalService changed the traffic within ${Math.round(Math.max(...timings))} ms.`,
      );
    }
    if (keptUsage) {
      step('The lab stays up (--keep)');
      for (const line of keptUsage) say(`  ${line}`);
    }
    return ok;
  }
  say(
    missing.length === 0
      ? "mode: snapshot: rules from genrule --snapshot written to the components' files (--snapshot); without it the demo runs the whole chain in a real cluster"
      : 'mode: snapshot: rules from genrule --snapshot written to the components\' files; `npm run cluster:build` builds the control plane for the whole chain in a real cluster',
  );

  const lab = new Lab(LAB_PREFIX);
  const stopHandlingInterrupts = cleanUpOnInterrupt(() => lab.cleanup());

  let topology: Topology | undefined;
  let connector: Connector | undefined;
  let ok = false;
  const timings: number[] = [];
  try {
    step('Building the lab: a LAN, an external server, a gateway host and a k8s node with pods (network namespaces)');
    topology = await buildTopology(lab);
    connector = prepareConnector(lab);
    say(`  external server ${ADDRESSES.external} (HTTP :8000), gateway host ${ADDRESSES.gatewayHost} (NIC eth0, spare IPs ${ADDRESSES.sourceIPs.join(', ')}), node ${ADDRESSES.node}`);
    say('  pods: my-pod1 10.244.0.11 (service ns1/my-service1 10.96.0.11:80), my-pod2 10.244.0.12 (ns2/my-service2 10.96.0.12:80),');
    say('        forwarder my-external-service1 10.244.0.50 (service external-services/my-external-service1 10.96.0.100:8000)');
    const withoutConnector = await fetchAsSeenBy(lab, topology);
    say(`  without the connector, my-pod1 reaches the external server as ${chalk.yellow(withoutConnector)} (the node): the problem.`);

    step('Generating the rules: bin/controller genrule --snapshot (the README\'s ExternalService, the lab\'s cluster)');
    const rules = await generateRules(connector, README_SOURCES);
    say(indent(rules));
    publishRules(connector, rules);

    const key = await lab.sshKeypair('forwarder_ssh_key');
    const logs = path.join(lab.tempDir, 'logs');
    fs.mkdirSync(logs, { recursive: true });
    step('Starting bin/gateway on the gateway host: a netns, macvlan, address and sshd per spare IP, then the nat rules');
    let started = performance.now();
    await startGateway(lab, topology, connector, key, path.join(logs, 'gateway.log'));
    say(`  both spare IPs answer ssh after ${Math.round(performance.now() - started)} ms`);

    step('Starting bin/forwarder in the forwarder pod: ssh -L/-R tunnels to the gateway IPs and the nat rules');
    started = performance.now();
    startForwarder(lab, topology, connector, key, path.join(logs, 'forwarder.log'));
    const checks = await waitForChecks(lab, snapshotTarget(topology), README_SOURCES, 30_000);
    say(`  traffic flows after ${Math.round(performance.now() - started)} ms`);

    step('The README\'s four connectivity checks');
    printChecks(checks);
    if (!checks.every((check) => check.ok)) throw new Error('a connectivity check failed');

    step('Changing the ExternalService: dropping the source ns2/my-service2 (192.168.122.201)');
    const remaining = README_SOURCES.slice(0, 1);
    const change = await applyChange(lab, topology, connector, remaining);
    timings.push(change.appliedMs);
    say(`  the forwarder and the gateway applied the change ${chalk.green(`${Math.round(change.appliedMs)} ms`)} after the rules were published (the original: up to 10 s)`);
    const after = await waitForChecks(lab, snapshotTarget(topology), remaining, 5000);
    printChecks(after);
    if (!after.every((check) => check.ok)) throw new Error('a check failed after the change');

    step('Putting the source back');
    const back = await applyChange(lab, topology, connector, README_SOURCES);
    timings.push(back.appliedMs);
    say(`  applied in ${chalk.green(`${Math.round(back.appliedMs)} ms`)}`);
    const restored = await waitForChecks(lab, snapshotTarget(topology), README_SOURCES, 10_000);
    printChecks(restored);
    if (!restored.every((check) => check.ok)) throw new Error('a check failed after restoring the source');

    ok = true;
    if (keep) {
      const pids = lab.detachAll();
      writeState({ mode: 'snapshot', tempDir: lab.tempDir, pids });
      step('The lab stays up (--keep)');
      say(`  try:   ip netns exec ${topology.pods.pod1.netns} node lab/http-get.mjs http://10.96.0.100:8000/`);
      say(`         ip netns exec ${topology.external} node lab/http-get.mjs http://${ADDRESSES.sourceIPs[0]}/`);
      say(`  rules: ${connector.rulesFile} (gateway), ${connector.dataFile} (forwarder); edit ${connector.confDir} and rerun genrule to change them`);
      say(`  logs:  ${logs}/gateway.log, ${logs}/forwarder.log; access logs in ${lab.tempDir}`);
      say('  remove it with: npm run demo -- --down');
      return true;
    }
    step('Tearing down: stopping the forwarder and the gateway, bin/gateway teardown, removing the lab');
  } catch (error) {
    process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    for (const [name, handle] of [['gateway', connector?.gateway], ['forwarder', connector?.forwarder]] as const) {
      if (handle) process.stderr.write(`--- last lines of the ${name}'s log ---\n${handle.output().split('\n').slice(-15).join('\n')}\n`);
    }
  } finally {
    if (!keep || !ok) {
      if (connector?.forwarder) await lab.stop(connector.forwarder);
      if (connector?.gateway) await lab.stop(connector.gateway);
      if (topology && connector) {
        await teardownGateway(lab, topology, connector).catch((error: unknown) => process.stderr.write(`gateway teardown: ${String(error)}\n`));
      }
      // The gateway's namespaces carry the lab's prefix: if its teardown failed (reported
      // above), the lab still removes them rather than leave a half-torn-down lab behind.
      lab.adoptLeftovers();
      await lab.cleanup();
      const left = Lab.leftovers(LAB_PREFIX);
      say(left.length === 0 ? '  nothing left behind.' : `  left behind: ${left.join(', ')}`);
    }
    stopHandlingInterrupts();
  }
  if (ok) {
    const slowest = Math.round(Math.max(...timings));
    say(
      `\n${chalk.green.bold('Demo complete (mode: snapshot):')} pods reached the external server as ${ADDRESSES.sourceIPs.join(' and ')}, the external server ` +
        `reached the pods through the same IPs, and each change was applied within ${slowest} ms of publishing the rules.`,
    );
  }
  return ok;
}

/** `--failover`: two gateway nodes on keepalived; the holder loses its link and the standby takes over (scripts/demo-failover.ts). */
async function demoWithFailover(): Promise<boolean> {
  if (!labCanStart()) return false;
  const lab = new Lab(LAB_PREFIX);
  const stopHandlingInterrupts = cleanUpOnInterrupt(() => lab.cleanup());
  let fl: FailoverLab | undefined;
  let summary: string | undefined;
  try {
    summary = await failoverDemo(lab, { say, step, chalk }, (made) => (fl = made));
  } catch (error) {
    process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    for (const node of fl ? [fl.nodes.A, fl.nodes.B] : []) {
      if (node.process) process.stderr.write(`--- last lines of node ${node.name}'s gateway log ---\n${node.process.output().split('\n').slice(-15).join('\n')}\n`);
    }
    if (fl) await stopFailoverLab(fl).catch((teardown: unknown) => process.stderr.write(`gateway teardown: ${String(teardown)}\n`));
  } finally {
    lab.adoptLeftovers();
    await lab.cleanup();
    const left = Lab.leftovers(LAB_PREFIX);
    say(left.length === 0 ? '  nothing left behind.' : `  left behind: ${left.join(', ')}`);
    stopHandlingInterrupts();
  }
  if (summary) say(`\n${chalk.green.bold('Demo complete:')} ${summary}`);
  return summary !== undefined;
}

async function fetchAsSeenBy(lab: Lab, topology: Topology): Promise<string> {
  const body = await httpGet(lab, topology.pods.pod1.netns, `http://${ADDRESSES.external}:8000/`);
  return body.replace(/^.* saw you as /, '');
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => `  ${chalk.dim(line)}`)
    .join('\n');
}

const program = new Command('demo')
  .description('the end-to-end lab: the README\'s three servers in network namespaces on this machine (needs root)')
  .addOption(new Option('--keep', 'leave the lab running at the end (in cluster mode the whole chain: control plane, lab node, gateway, controller loop) and print how to use and remove it'))
  .addOption(new Option('--down', 'remove a lab left running by --keep'))
  .addOption(new Option('--snapshot', 'run the snapshot lab even when the control-plane binaries are built'))
  .addOption(new Option('--failover', 'two gateway nodes on keepalived instead: the holder of the IPs loses its link, the standby takes them over, timed').conflicts(['keep', 'snapshot']))
  .action(async (options: { keep?: boolean; down?: boolean; snapshot?: boolean; failover?: boolean }) => {
    if (options.down) {
      process.exitCode = (await down()) ? 0 : 1;
      return;
    }
    const ok = options.failover ? await demoWithFailover() : await demo(options.keep === true, options.snapshot === true);
    process.exitCode = ok ? 0 : 1;
  });
await program.parseAsync(process.argv);
