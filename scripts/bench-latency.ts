import path from 'node:path';
import fs from 'node:fs';
import { Lab } from '../lab/netns.js';
import { buildTopology } from '../lab/topology.js';
import { README_SOURCES, generateRules, prepareConnector, publishRules, startForwarder, startGateway, teardownGateway } from '../lab/connector.js';
import { applyChange, snapshotTarget, waitForChecks } from '../lab/checks.js';
import { median } from './stats.js';

/**
 * Change-to-applied latency in the end-to-end lab: the rules are published (gateway file by
 * rename, ConfigMap-style `..data` swap for the forwarder, at the same moment) and the clock
 * stops when both the forwarder (nat rules and tunnels) and the gateway (nat rules) hold the new
 * state ("applied"), and then when a request through each source's tunnels works, or fails for a
 * removed source ("usable"). Alternates dropping and restoring the second source, so additions
 * and removals are measured apart. Where an addition's time goes is read from the components'
 * debug logs: when each saw the change, when the gateway reloaded its sshd, when the forwarder
 * started ssh and whether a start was refused.
 */

export interface ChangeSamples {
  appliedMs: number[];
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
  additions: ChangeSamples;
  removals: ChangeSamples;
  additionSteps: AdditionSteps;
}

/** The ms after `fromMs` of the first log line at or after it that matches `pattern`. */
function firstAfter(log: string, fromMs: number, untilMs: number, pattern: RegExp): number | undefined {
  for (const line of log.split('\n')) {
    const at = Date.parse(line.slice(0, line.indexOf(' ')));
    if (Number.isFinite(at) && at >= fromMs && at < untilMs && pattern.test(line)) return at - fromMs;
  }
  return undefined;
}

function countAfter(log: string, fromMs: number, untilMs: number, pattern: RegExp): number {
  return log.split('\n').filter((line) => {
    const at = Date.parse(line.slice(0, line.indexOf(' ')));
    return Number.isFinite(at) && at >= fromMs && at < untilMs && pattern.test(line);
  }).length;
}

export function medianOf(values: readonly (number | undefined)[]): number | undefined {
  const known = values.filter((value): value is number => value !== undefined);
  return known.length === 0 ? undefined : median(known);
}

export async function benchLatency(changes = 8): Promise<LatencyMeasurement> {
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
    const gatewayLog = path.join(logs, 'gateway.log');
    const forwarderLog = path.join(logs, 'forwarder.log');
    const gateway = await startGateway(lab, topology, connector, key, gatewayLog, debug);
    const forwarder = startForwarder(lab, topology, connector, key, forwarderLog, debug);
    stopAll = async () => {
      await lab.stop(forwarder);
      await lab.stop(gateway);
      await teardownGateway(lab, topology, connector);
    };
    const checks = await waitForChecks(lab, snapshotTarget(topology), README_SOURCES, 30_000);
    if (!checks.every((check) => check.ok)) throw new Error(`the lab did not come up: ${JSON.stringify(checks)}`);

    const additions: ChangeSamples = { appliedMs: [], usableMs: [] };
    const removals: ChangeSamples = { appliedMs: [], usableMs: [] };
    const steps: AdditionSteps = { gatewaySawChange: [], gatewayReloadedSshd: [], forwarderSawChange: [], forwarderStartedSsh: [], tunnelRetries: [] };
    for (let index = 0; index < changes; index++) {
      const adding = index % 2 === 1;
      const timing = await applyChange(lab, topology, connector, adding ? README_SOURCES : README_SOURCES.slice(0, 1));
      (adding ? additions : removals).appliedMs.push(timing.appliedMs);
      (adding ? additions : removals).usableMs.push(timing.usableMs);
      if (!adding) continue;
      const from = timing.publishedAtMs;
      const until = from + timing.usableMs;
      const gatewayText = fs.readFileSync(gatewayLog, 'utf8');
      const forwarderText = fs.readFileSync(forwarderLog, 'utf8');
      steps.gatewaySawChange.push(firstAfter(gatewayText, from, until, /change seen/));
      steps.gatewayReloadedSshd.push(firstAfter(gatewayText, from, until, /reloading sshd/));
      steps.forwarderSawChange.push(firstAfter(forwarderText, from, until, /change seen/));
      steps.forwarderStartedSsh.push(firstAfter(forwarderText, from, until, / start (local|remote) tunnel /));
      steps.tunnelRetries.push(countAfter(forwarderText, from, until, /failed: start (local|remote) tunnel|poll saw a change/));
    }
    return { changes, additions, removals, additionSteps: steps };
  } finally {
    await stopAll().catch(() => undefined);
    await lab.cleanup();
  }
}
