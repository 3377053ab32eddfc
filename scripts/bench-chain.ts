import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startClusterChain, timeConfChangeDetail, waitForClusterChecks, type ClusterChain, type ConfChangeTiming } from '../lab/cluster-chain.js';
import { KUBELET_SYNC_PERIOD_MS } from '../lab/cluster-lab.js';
import { README_SOURCES } from '../lab/connector.js';
import { binaryProblems, kubeBinaries } from '../lab/kube-binaries.js';
import { cleanUpOnInterrupt, Lab } from '../lab/netns.js';
import { PODS } from '../lab/topology.js';
import { median, sampleLoad } from './stats.js';
import { logLines, type LogLine } from './log-lines.js';

/**
 * The whole chain in cluster mode (lab/cluster-chain.ts: a real control plane, the lab node as
 * kubelet, bin/controller's loop on a conf directory, bin/gateway on the gateway host, the
 * forwarder pod the controller creates): the ExternalService file edited, timed until my-pod2's
 * traffic through the forwarder changes (lab/cluster-chain.ts timeConfChange), alternately
 * dropping and restoring the ns2 source. Twice in one run:
 * - with the forwarder's watch of its ConfigMap through the API (the deployed default);
 * - with the pods' access to the API blocked, so that the forwarder has only its mounted
 *   ConfigMap volume, which the lab node refreshes after kubelet's default sync period.
 * The first chain runs with LOG_LEVEL=debug everywhere, and where the time of each change goes is
 * read from the controller's, the gateway's and the forwarder's logs (see STEPS).
 */

export type ChainMode = 'watch' | 'volume';

export interface ChainChange {
  kind: 'removal' | 'addition';
  /** From the edit until the probe that saw the new behaviour returned. */
  ms: number;
  /** From the edit until that probe started. */
  probeStartMs: number;
  /** Per step of STEPS, ms after the edit (undefined where the log does not show it). */
  steps: Record<string, number | undefined>;
  /** With the volume only: how long before the edit the forwarder last saw its data file change. */
  sinceRefreshMs?: number | undefined;
}

export interface ChainRun {
  mode: ChainMode;
  volumeSyncPeriodMs: number;
  /** From the controller's start until the README's checks passed. */
  startupMs: number;
  changes: ChainChange[];
  medianMs: number;
  maxMs: number;
}

export interface ChainMeasurement {
  skipped?: string;
  runs: ChainRun[];
  /** The 1-minute load average, sampled every 5 s during the section. */
  load: number[];
}

type Source = 'controller' | 'gateway' | 'forwarder';

/**
 * One step of a change: the first line of `source`'s log that matches, at or after the step
 * named by `after` (or the edit), and before the next edit. `since` names the step it is timed
 * from in the breakdown's last column (the edit when not given).
 */
interface Step {
  name: string;
  /** What the breakdown's `from` column calls it. */
  short: string;
  label: string;
  source: Source;
  pattern: RegExp;
  after?: string;
  since?: string;
}

/** The steps of one change as the components' logs (LOG_LEVEL=debug) show them, in the order of the breakdown. */
export const STEPS: readonly Step[] = [
  { name: 'confSeen', short: 'conf edit seen', label: 'controller: conf edit seen (its 25 ms debounce included)', source: 'controller', pattern: /change seen, reconciling/ },
  { name: 'cycleStart', short: 'controller cycle start', label: 'controller: cycle started', source: 'controller', pattern: /cycle \d+ started/, after: 'confSeen', since: 'confSeen' },
  { name: 'scpStart', short: 'scp start', label: 'controller: conf and cluster read, scp to the gateway node started', source: 'controller', pattern: /copy the rules to /, after: 'cycleStart', since: 'cycleStart' },
  { name: 'renameStart', short: 'rename start', label: 'controller: scp done, rename (ssh mv) started', source: 'controller', pattern: /rename .* on /, after: 'scpStart', since: 'scpStart' },
  { name: 'configMapStart', short: 'ConfigMap write start', label: 'controller: rename done, ConfigMap write (kubectl replace) started', source: 'controller', pattern: /INFO .*ConfigMap/, after: 'renameStart', since: 'renameStart' },
  { name: 'gatewaySeen', short: 'gateway saw the change', label: 'gateway: rules file change seen (25 ms debounce included)', source: 'gateway', pattern: /change seen, reconciling/, since: 'renameStart' },
  { name: 'gatewayDone', short: 'gateway applied', label: 'gateway: applied (sshd reloaded, nat table), cycle done', source: 'gateway', pattern: /waiting up to/, after: 'gatewaySeen', since: 'gatewaySeen' },
  { name: 'forwarderSeen', short: 'forwarder saw the event', label: "forwarder: its ConfigMap's watch event seen", source: 'forwarder', pattern: /change seen, reconciling.*configmap/, since: 'configMapStart' },
  { name: 'forwarderStart', short: 'forwarder cycle start', label: 'forwarder: cycle started', source: 'forwarder', pattern: /cycle \d+ started/, after: 'forwarderSeen', since: 'forwarderSeen' },
  { name: 'forwarderDone', short: 'forwarder applied', label: 'forwarder: applied (tunnels, nat table), cycle done', source: 'forwarder', pattern: /waiting up to/, after: 'forwarderStart', since: 'forwarderStart' },
  { name: 'cycleDone', short: 'controller cycle done', label: 'controller: ConfigMaps written, cycle done', source: 'controller', pattern: /cycle done/, after: 'configMapStart', since: 'configMapStart' },
];

/** With the volume only: when the forwarder saw its data file change (kubelet's refresh of the volume swaps `..data`). */
export const VOLUME_STEPS: readonly Step[] = [
  { name: 'forwarderVolumeSeen', short: 'forwarder saw the file change', label: 'forwarder: data file change seen', source: 'forwarder', pattern: /change seen, reconciling.*\/\.\./ },
];

/** Reads the steps of the change made at `editedAtMs` (until `untilMs`) from the logs. */
export function changeSteps(logs: Record<Source, LogLine[]>, steps: readonly Step[], editedAtMs: number, untilMs: number): Record<string, number | undefined> {
  const at: Record<string, number | undefined> = {};
  for (const step of steps) {
    const from = step.after === undefined ? editedAtMs : at[step.after];
    if (from === undefined) {
      at[step.name] = undefined;
      continue;
    }
    at[step.name] = logs[step.source].find((line) => line.atMs >= from && line.atMs < untilMs && step.pattern.test(line.text))?.atMs;
  }
  return Object.fromEntries(Object.entries(at).map(([name, value]) => [name, value === undefined ? undefined : value - editedAtMs]));
}

export interface ChainOptions {
  /** Changes with the forwarder's watch (at least 6 in a full run). */
  watchChanges: number;
  /** Changes with the volume only (at least 5 in a full run). */
  volumeChanges: number;
  volumeSyncPeriodMs?: number;
}

export const FULL_CHAIN: ChainOptions = { watchChanges: 8, volumeChanges: 5 };
export const QUICK_CHAIN: ChainOptions = { watchChanges: 4, volumeChanges: 2, volumeSyncPeriodMs: 10_000 };

async function runChain(lab: Lab, mode: ChainMode, count: number, volumeSyncPeriodMs: number, progress: (text: string) => void, held: { chain?: ClusterChain }): Promise<ChainRun> {
  const binaries = kubeBinaries();
  const chain = await startClusterChain(lab, { binaries, blockApi: mode === 'volume', logLevel: 'debug', volumeSyncPeriodMs });
  held.chain = chain;
  try {
    const started = performance.now();
    chain.editConf(README_SOURCES);
    await chain.startController();
    // With the volume only, the forwarder's first rules may wait for a volume refresh.
    const first = await waitForClusterChecks(lab, chain, README_SOURCES, 180_000 + 2 * volumeSyncPeriodMs, started);
    if (!first.checks.every((check) => check.ok)) throw new Error(`the chain did not come up: ${first.checks.filter((check) => !check.ok).map((check) => check.title).join('; ')}`);
    progress(`  ${mode}: the chain is up after ${Math.round(first.elapsedMs)} ms; ${count} changes`);
    const timings: { kind: ChainChange['kind']; timing: ConfChangeTiming }[] = [];
    const timeoutMs = 30_000 + 2 * volumeSyncPeriodMs;
    for (let index = 0; index < count; index++) {
      const adding = index % 2 === 1;
      const sources = adding ? README_SOURCES : README_SOURCES.slice(0, 1);
      const timing = await timeConfChangeDetail(lab, chain, sources, timeoutMs);
      timings.push({ kind: adding ? 'addition' : 'removal', timing });
      progress(`  ${mode}: ${adding ? 'restored' : 'dropped'} the ns2 source: traffic changed after ${Math.round(timing.elapsedMs)} ms`);
      // Every check as the file now says, before the next change.
      const after = await waitForClusterChecks(lab, chain, sources, timeoutMs);
      if (!after.checks.every((check) => check.ok)) throw new Error(`a check failed after change ${index + 1}: ${after.checks.filter((check) => !check.ok).map((check) => check.title).join('; ')}`);
    }
    const forwarder = await chain.cluster.pod('external-services', PODS.forwarder.name);
    const logs: Record<Source, LogLine[]> = {
      controller: logLines(path.join(chain.logsDir, 'controller.log')),
      gateway: logLines(path.join(chain.logsDir, 'gateway.log')),
      forwarder: logLines(forwarder.log('forwarder')),
    };
    const changes = timings.map(({ kind, timing }, index): ChainChange => {
      const until = timings[index + 1]?.timing.editedAtMs ?? Date.now();
      const steps = changeSteps(logs, mode === 'watch' ? STEPS : VOLUME_STEPS, timing.editedAtMs, until);
      if (mode === 'watch') return { kind, ms: timing.elapsedMs, probeStartMs: timing.lastProbeStartMs, steps };
      const refresh = logs.forwarder.filter((line) => line.atMs < timing.editedAtMs && VOLUME_STEPS[0]?.pattern.test(line.text)).at(-1);
      return { kind, ms: timing.elapsedMs, probeStartMs: timing.lastProbeStartMs, steps, sinceRefreshMs: refresh === undefined ? undefined : timing.editedAtMs - refresh.atMs };
    });
    const samples = changes.map((change) => change.ms);
    return { mode, volumeSyncPeriodMs, startupMs: first.elapsedMs, changes, medianMs: median(samples), maxMs: Math.max(...samples) };
  } finally {
    held.chain = undefined;
    await chain.stopController().catch(() => undefined);
    await chain.teardown().catch((error: unknown) => progress(`  ${mode}: teardown: ${String(error)}`));
    await chain.cluster.stop().catch(() => undefined);
  }
}

export async function benchChain(options: ChainOptions = FULL_CHAIN, progress: (text: string) => void = () => undefined): Promise<ChainMeasurement> {
  const problems = await binaryProblems(kubeBinaries());
  if (problems.length > 0) return { skipped: `the Kubernetes binaries are not built (${problems[0]}); npm run cluster:build builds them, then it runs`, runs: [], load: [] };
  const labs: Lab[] = [];
  const held: { chain?: ClusterChain } = {};
  const sweep = async (): Promise<void> => {
    for (const lab of labs) {
      lab.adoptLeftovers();
      await lab.cleanup();
    }
  };
  const removeHandler = cleanUpOnInterrupt(async () => {
    await held.chain?.cluster.stop().catch(() => undefined);
    await sweep();
  });
  const load = sampleLoad();
  const runs: ChainRun[] = [];
  try {
    const volumeSyncPeriodMs = options.volumeSyncPeriodMs ?? KUBELET_SYNC_PERIOD_MS;
    const modes: [ChainMode, number, string][] = [
      ['watch', options.watchChanges, 'the chain with the forwarder watching its ConfigMap through the API'],
      ['volume', options.volumeChanges, `the chain with the pods' API access blocked (the mounted ConfigMap only, volume sync every ${volumeSyncPeriodMs / 1000} s)`],
    ];
    for (const [mode, count, what] of modes) {
      progress(`  ${mode}: ${what}`);
      // One lab each (its folder goes with it); the same prefix, so one sweep finds what either left.
      const lab = new Lab('k8xbc');
      labs.push(lab);
      runs.push(await runChain(lab, mode, count, volumeSyncPeriodMs, progress, held));
      lab.adoptLeftovers();
      await lab.cleanup();
    }
    return { runs, load: load.samples };
  } finally {
    load.stop();
    await sweep();
    removeHandler();
  }
}

const round = (value: number | undefined): string => (value === undefined ? '-' : String(Math.round(value)));

function medianOf(values: readonly (number | undefined)[]): number | undefined {
  const known = values.filter((value): value is number => value !== undefined);
  return known.length === 0 ? undefined : median(known);
}

/** The table: each way's median and max beside the target and the original's documented behaviour; then where the time of a change with the watch goes. */
export function renderChain(measurement: ChainMeasurement, table: (header: string[], rows: string[][]) => string): string {
  if (measurement.skipped) return `Whole-chain change latency in cluster mode: skipped: ${measurement.skipped}`;
  const original = 'next sync (INTERVAL 10 s) + volume refresh (~1 min): not measured';
  const label: Record<ChainMode, (run: ChainRun) => string> = {
    watch: () => "forwarder watches its ConfigMap through the API",
    volume: (run) => `API blocked: the mounted ConfigMap only (kubelet sync ${run.volumeSyncPeriodMs / 1000} s + jitter)`,
  };
  const target: Record<ChainMode, string> = { watch: 'median < 2000, max < 3000', volume: '-' };
  const out = [
    'Whole-chain change latency in cluster mode: the ExternalService file edited until my-pod2\'s traffic changed (alternately dropping and restoring the ns2 source; real control plane, lab kubelet, bin/controller loop, bin/gateway)',
    table(
      ['path', 'changes', 'median ms', 'max ms', 'samples (ms)', 'target', 'the original'],
      measurement.runs.map((run) => [label[run.mode](run), String(run.changes.length), round(run.medianMs), round(run.maxMs), run.changes.map((change) => round(change.ms)).join(', '), target[run.mode], original]),
    ),
  ];
  const watch = measurement.runs.find((run) => run.mode === 'watch');
  if (watch) {
    out.push(`  where a change's time goes with the watch (from the components' logs, LOG_LEVEL=debug; medians of the ${watch.changes.length} changes, of each kind, and of the step alone, timed from the step in the \`from\` column):`);
    const after = (changes: readonly ChainChange[], at: (change: ChainChange) => number | undefined): string =>
      round(medianOf(changes.map(at)));
    const removals = watch.changes.filter((change) => change.kind === 'removal');
    const additions = watch.changes.filter((change) => change.kind === 'addition');
    const row = (label: string, at: (change: ChainChange) => number | undefined, from: string, since: (change: ChainChange) => number | undefined): string[] => [
      label,
      after(watch.changes, at),
      after(removals, at),
      after(additions, at),
      after(watch.changes, (change) => {
        const [end, begin] = [at(change), since(change)];
        return end === undefined || begin === undefined ? undefined : end - begin;
      }),
      from,
      `${watch.changes.filter((change) => at(change) !== undefined).length} of ${watch.changes.length}`,
    ];
    const short = new Map(STEPS.map((step) => [step.name, step.short]));
    const rows = STEPS.map((step) =>
      row(step.label, (change) => change.steps[step.name], step.since === undefined ? 'the edit' : (short.get(step.since) ?? step.since), (change) => (step.since === undefined ? 0 : change.steps[step.since])),
    );
    rows.push(row('probe: the probe that saw the change started (one after another, 50 ms apart)', (change) => change.probeStartMs, '-', () => undefined));
    rows.push(row("traffic changed: that probe's answer", (change) => change.ms, 'forwarder applied', (change) => change.steps.forwarderDone));
    out.push(
      table(['step', 'after the edit: median ms', 'removals', 'additions', 'the step alone: median ms', 'from', 'seen in'], rows)
        .split('\n')
        .map((line) => `    ${line}`)
        .join('\n'),
    );
  }
  const volume = measurement.runs.find((run) => run.mode === 'volume');
  if (volume) {
    const seconds = (value: number | undefined): string => (value === undefined ? '-' : (value / 1000).toFixed(1));
    out.push(
      `  with the volume only, the forwarder saw its data file change ${volume.changes.map((change) => seconds(change.steps.forwarderVolumeSeen)).join(', ')} s after each edit; ` +
        `each edit came ${volume.changes.map((change) => seconds(change.sinceRefreshMs)).join(', ')} s after the volume's previous refresh (the bench edits as soon as the previous change's checks pass), ` +
        'so each change waited for nearly a whole sync period plus jitter: close to the worst case. An edit at a random moment waits about half as long on average.',
    );
  }
  out.push(`  the chain came up (controller started until the README's four checks passed) after ${measurement.runs.map((run) => `${round(run.startupMs)} ms (${run.mode})`).join(', ')}.`);
  out.push(
    "  the original: its controller applies a change at its next sync (INTERVAL, 10 s) and its forwarder reads the mounted ConfigMap, which kubelet refreshes after its sync period (about 1 min, plus jitter); it has no change path this lab can time.",
  );
  const load = measurement.load;
  if (load.length > 0) out.push(`  load average (1 min) during the section: ${Math.min(...load).toFixed(1)} to ${Math.max(...load).toFixed(1)} (2 cores).`);
  return out.join('\n');
}
