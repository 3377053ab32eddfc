import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { errorMessage } from '../lib/errors.js';
import { ControlPlane, type ControlPlaneInfo } from '../lab/control-plane.js';
import { KubeApi } from '../lab/kube-api.js';
import { binaryProblems, kubeBinaries } from '../lab/kube-binaries.js';
import { LabNode } from '../lab/kube-node.js';

/**
 * npm run cluster -- up | down: the lab's Kubernetes control plane (lab/control-plane.ts) for
 * trying things with kubectl and bin/controller.
 *   up               start it and leave it running; prints the KUBECONFIG line
 *   up --foreground  start it and keep it until Ctrl-C, then remove it
 *   down             stop and remove the one left running
 */

const DEFAULT_STATE = path.join(os.tmpdir(), 'k8s-ext-connector-cluster.json');
const say = (text: string): void => void process.stdout.write(`${text}\n`);

function readState(file: string): ControlPlaneInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ControlPlaneInfo;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGINT/SIGTERM end the program through exit, so that the control plane's exit hook removes it. */
function exitOnSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping and removing the control plane\n`);
      process.exit(130);
    });
  }
}

function usage(info: ControlPlaneInfo): void {
  say('');
  say(`Kubernetes ${info.kubernetesVersion} (etcd ${info.etcdVersion}) at ${info.server}, node ${info.node.name}. Use it with:`);
  say(`  export KUBECONFIG=${info.adminKubeconfig}`);
  say(`  export PATH=${info.kubernetesBinDir}:$PATH`);
  say(`Logs, certificates and the audit log are in ${info.dir}.`);
}

async function up(options: { foreground?: boolean; bindAddress: string; state: string }): Promise<number> {
  const previous = readState(options.state);
  if (previous && previous.pids.some(alive)) {
    process.stderr.write(`cluster: a control plane is already up (KUBECONFIG=${previous.adminKubeconfig}); remove it with: npm run cluster -- down\n`);
    return 1;
  }
  const binaries = kubeBinaries();
  const problems = await binaryProblems(binaries);
  if (problems.length > 0) {
    process.stderr.write(`cluster: the Kubernetes binaries are not built (${problems[0]}): run npm run cluster:build\n`);
    return 1;
  }
  exitOnSignals();
  const plane = await ControlPlane.start({ binaries, bindAddress: options.bindAddress, keep: !options.foreground, log: (line) => say(`==> ${line}`) });
  if (options.foreground) {
    usage(plane.info);
    say('Ctrl-C stops it and removes everything.');
    await new Promise(() => undefined);
  }
  // The lab node keeps finishing pod deletions from a process of its own, which reads the state file.
  const writeState = (info: ControlPlaneInfo): void => fs.writeFileSync(options.state, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  writeState(plane.info);
  const state = await plane.detach({ companion: [process.execPath, process.argv[1] ?? '', 'node', '--state', options.state] });
  writeState(state);
  usage(state);
  say('Remove it with: npm run cluster -- down');
  return 0;
}

async function down(options: { state: string }): Promise<number> {
  const state = readState(options.state);
  if (!state) {
    say(`no control plane is up (no ${options.state})`);
    return 0;
  }
  await ControlPlane.remove(state);
  fs.rmSync(options.state, { force: true });
  say(`control plane at ${state.server} stopped; ${state.dir} removed`);
  return 0;
}

/** The lab node of a control plane left running: finishes pod deletions until SIGTERM. */
async function node(options: { state: string }): Promise<number> {
  const state = readState(options.state);
  if (!state) throw new Error(`no control plane state in ${options.state}`);
  const api = new KubeApi({ server: state.server, caFile: state.caFile, ...state.admin });
  const labNode = LabNode.attach(api, { ...state.node, onError: (message) => process.stderr.write(`${message}\n`) });
  labNode.start();
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await labNode.stop();
  api.close();
  return 0;
}

const stateOption = (): Option => new Option('--state <file>', 'where a control plane left running is recorded').default(DEFAULT_STATE);

const program = new Command('cluster').description("the lab's Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, one node) on this machine");
program
  .command('up')
  .description('start the control plane and leave it running (prints the KUBECONFIG line)')
  .option('--foreground', 'keep it only until Ctrl-C, then stop it and remove everything')
  .addOption(new Option('--bind-address <ip>', 'address to listen on; another than loopback lets pods in network namespaces reach the API').default('127.0.0.1'))
  .addOption(stateOption())
  .action(async (options: { foreground?: boolean; bindAddress: string; state: string }) => {
    process.exitCode = await up(options);
  });
program
  .command('down')
  .description('stop the control plane left running by up and remove its files')
  .addOption(stateOption())
  .action(async (options: { state: string }) => {
    process.exitCode = await down(options);
  });
program
  .command('node', { hidden: true })
  .addOption(stateOption())
  .action(async (options: { state: string }) => {
    process.exitCode = await node(options);
  });

try {
  await program.parseAsync();
} catch (error) {
  process.stderr.write(`cluster: ${errorMessage(error)}\n`);
  process.exitCode = 1;
}
