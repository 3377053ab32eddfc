import path from 'node:path';
import fs from 'node:fs';
import { Lab } from '../lab/netns.js';
import { ADDRESSES, buildTopology, type Topology } from '../lab/topology.js';
import { README_SOURCES, generateRules, prepareConnector, publishRules, startForwarder, startGateway, teardownGateway, type Connector, type ExternalServiceSource } from '../lab/connector.js';
import { appliedState, connectivityChecks, snapshotTarget, waitForChecks } from '../lab/checks.js';
import { median } from './stats.js';
import { logLines, type LogLine } from './log-lines.js';

/**
 * Change-to-applied latency in the end-to-end lab: the rules are published (gateway file by
 * rename, ConfigMap-style `..data` swap for the forwarder, at the same moment), and each change is
 * timed from the publish to the end of the last cycle of the forwarder and of the gateway that
 * changed something for it, from their own debug logs ("cycle N done ... changed=true", a
 * timestamp on the bench's clock). Nothing is probed while the clock runs but the requests of
 * "usable": until a request through each source's tunnels works, or fails for a removed source
 * (four requests, one Node start each). A change counts as settled once the forwarder has had a
 * cycle with nothing to do after its last change and the tunnel liveness check has had time to
 * see a tunnel that exited; then, off the clock, the nat tables and tunnels are read and must be
 * as the rules say. Alternates dropping and restoring the second source, so additions and
 * removals are measured apart. Where an addition's time goes is read from the same logs.
 */

export interface ChangeSamples {
  /** Until both had applied it (the later of the two below). */
  appliedMs: number[];
  forwarderMs: number[];
  gatewayMs: number[];
  usableMs: number[];
}

/** ms after the publish, per addition (undefined where the event did not happen). */
export interface AdditionSteps {
  gatewaySawChange: (number | undefined)[];
  gatewayReloadedSshd: (number | undefined)[];
  forwarderSawChange: (number | undefined)[];
  forwarderStartedSsh: (number | undefined)[];
  /** Tunnel starts that failed, or tunnels restarted after they exited (the forwarder asked before the gateway permitted). */
  tunnelRetries: number[];
}

export interface LatencyMeasurement {
  changes: number;
  /** Settings the forwarder got beyond the lab's (none: its defaults). */
  forwarderEnv: Record<string, string>;
  additions: ChangeSamples;
  removals: ChangeSamples;
  additionSteps: AdditionSteps;
}

/** The ms after `fromMs` of the first log line at or after it that matches `pattern`. */
function firstAfter(lines: readonly LogLine[], fromMs: number, pattern: RegExp): number | undefined {
  const line = lines.find((entry) => pattern.test(entry.text));
  return line === undefined ? undefined : line.atMs - fromMs;
}

/** A cycle's end as the loop logs it (LOG_LEVEL=debug). */
export interface CycleEnd {
  cycle: number;
  /** When it started (its end minus its duration) and ended, ms since the epoch. */
  startedMs: number;
  endedMs: number;
  changed: boolean;
}

/** The ends of the cycles in a component's log (lines "TIMESTAMP DEBUG NAME cycle N done ms=M changed=BOOL"). */
export function cycleEnds(lines: readonly LogLine[]): CycleEnd[] {
  return lines.flatMap(({ atMs, text }) => {
    const match = / cycle (\d+) done ms=(\d+) changed=(true|false)/.exec(text);
    return match ? [{ cycle: Number(match[1]), startedMs: atMs - Number(match[2]), endedMs: atMs, changed: match[3] === 'true' }] : [];
  });
}

/** When the last cycle that started at or after `fromMs` and changed something ended, ms after `fromMs`. */
export function lastChangeAppliedMs(ends: readonly CycleEnd[], fromMs: number): number | undefined {
  const changed = ends.filter((end) => end.changed && end.startedMs >= fromMs);
  return changed.length === 0 ? undefined : Math.max(...changed.map((end) => end.endedMs)) - fromMs;
}

/**
 * Settled: the gateway ended a cycle that changed something, the forwarder ended one that changed
 * nothing after its last one that did, and `quietMs` have passed since both (the forwarder checks
 * twice a second that its tunnels run; the gateway's sshd may end a session a moment after).
 */
export function settled(forwarder: readonly CycleEnd[], gateway: readonly CycleEnd[], fromMs: number, nowMs: number, quietMs: number): boolean {
  const gatewayApplied = lastChangeAppliedMs(gateway, fromMs);
  const forwarderApplied = lastChangeAppliedMs(forwarder, fromMs);
  if (gatewayApplied === undefined || forwarderApplied === undefined) return false;
  const inSyncAfter = forwarder.some((end) => !end.changed && end.startedMs >= fromMs + forwarderApplied);
  return inSyncAfter && nowMs >= fromMs + Math.max(gatewayApplied, forwarderApplied) + quietMs;
}

const QUIET_MS = 1000;

async function timeChange(
  lab: Lab,
  topology: Topology,
  connector: Connector,
  sources: readonly ExternalServiceSource[],
  logs: { forwarder: string; gateway: string },
  timeoutMs = 15_000,
): Promise<{ publishedAtMs: number; appliedMs: number; forwarderMs: number; gatewayMs: number; usableMs: number }> {
  const rules = await generateRules(connector, sources);
  const enabled = new Set(sources.map((source) => source.sourceIP));
  const publishedAtMs = Date.now();
  publishRules(connector, rules);
  let usableMs: number | undefined;
  for (;;) {
    const elapsed = Date.now() - publishedAtMs;
    if (usableMs === undefined) {
      const checks = await connectivityChecks(lab, snapshotTarget(topology), sources, 1000);
      if (checks.every((check) => check.ok)) usableMs = Date.now() - publishedAtMs;
      else if (elapsed > timeoutMs) throw new Error(`the change was not usable within ${timeoutMs} ms: ${JSON.stringify(checks)}`);
      continue;
    }
    const forwarder = cycleEnds(logLines(logs.forwarder, publishedAtMs));
    const gateway = cycleEnds(logLines(logs.gateway, publishedAtMs));
    if (settled(forwarder, gateway, publishedAtMs, Date.now(), QUIET_MS)) {
      const forwarderMs = lastChangeAppliedMs(forwarder, publishedAtMs) as number;
      const gatewayMs = lastChangeAppliedMs(gateway, publishedAtMs) as number;
      // Off the clock: what the logs call applied must be what runs.
      const state = await appliedState(lab, topology, connector);
      const wrong = ADDRESSES.sourceIPs.filter((ip) => {
        const entry = state[ip]!;
        return enabled.has(ip)
          ? !(entry.forwarderRules > 0 && entry.gatewayRules > 0 && entry.tunnels === 2)
          : !(entry.forwarderRules === 0 && entry.gatewayRules === 0 && entry.tunnels === 0);
      });
      if (wrong.length > 0) throw new Error(`the logs say the change was applied, but for ${wrong.join(', ')} the lab holds ${JSON.stringify(state)}`);
      return { publishedAtMs, appliedMs: Math.max(forwarderMs, gatewayMs), forwarderMs, gatewayMs, usableMs };
    }
    if (elapsed > timeoutMs) throw new Error(`the change did not settle within ${timeoutMs} ms (forwarder ${JSON.stringify(forwarder)}, gateway ${JSON.stringify(gateway)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function medianOf(values: readonly (number | undefined)[]): number | undefined {
  const known = values.filter((value): value is number => value !== undefined);
  return known.length === 0 ? undefined : median(known);
}

export async function benchLatency(changes = 8, forwarderEnv: Record<string, string> = {}): Promise<LatencyMeasurement> {
  const lab = new Lab('k8xbl');
  const logs = path.join(lab.tempDir, 'logs');
  let stopAll = async (): Promise<void> => undefined;
  try {
    const topology = await buildTopology(lab);
    const connector = prepareConnector(lab);
    publishRules(connector, await generateRules(connector, README_SOURCES));
    fs.mkdirSync(logs, { recursive: true });
    const key = await lab.sshKeypair();
    const debug = { LOG_LEVEL: 'debug' };
    const files = { gateway: path.join(logs, 'gateway.log'), forwarder: path.join(logs, 'forwarder.log') };
    const gateway = await startGateway(lab, topology, connector, key, files.gateway, debug);
    const forwarder = startForwarder(lab, topology, connector, key, files.forwarder, { ...debug, ...forwarderEnv });
    stopAll = async () => {
      await lab.stop(forwarder);
      await lab.stop(gateway);
      await teardownGateway(lab, topology, connector);
    };
    const checks = await waitForChecks(lab, snapshotTarget(topology), README_SOURCES, 30_000);
    if (!checks.every((check) => check.ok)) throw new Error(`the lab did not come up: ${JSON.stringify(checks)}`);

    const additions: ChangeSamples = { appliedMs: [], forwarderMs: [], gatewayMs: [], usableMs: [] };
    const removals: ChangeSamples = { appliedMs: [], forwarderMs: [], gatewayMs: [], usableMs: [] };
    const steps: AdditionSteps = { gatewaySawChange: [], gatewayReloadedSshd: [], forwarderSawChange: [], forwarderStartedSsh: [], tunnelRetries: [] };
    for (let index = 0; index < changes; index++) {
      const adding = index % 2 === 1;
      const timing = await timeChange(lab, topology, connector, adding ? README_SOURCES : README_SOURCES.slice(0, 1), files);
      const samples = adding ? additions : removals;
      samples.appliedMs.push(timing.appliedMs);
      samples.forwarderMs.push(timing.forwarderMs);
      samples.gatewayMs.push(timing.gatewayMs);
      samples.usableMs.push(timing.usableMs);
      if (!adding) continue;
      const from = timing.publishedAtMs;
      const gatewayLines = logLines(files.gateway, from);
      const forwarderLines = logLines(files.forwarder, from);
      steps.gatewaySawChange.push(firstAfter(gatewayLines, from, /change seen/));
      steps.gatewayReloadedSshd.push(firstAfter(gatewayLines, from, /reloading sshd/));
      steps.forwarderSawChange.push(firstAfter(forwarderLines, from, /change seen/));
      steps.forwarderStartedSsh.push(firstAfter(forwarderLines, from, / start (local|remote) tunnel /));
      steps.tunnelRetries.push(forwarderLines.filter((line) => /failed: start (local|remote) tunnel|retrying in \d+ ms: start (local|remote) tunnel|poll saw a change/.test(line.text)).length);
    }
    return { changes, forwarderEnv, additions, removals, additionSteps: steps };
  } finally {
    await stopAll().catch(() => undefined);
    await lab.cleanup();
  }
}
