import path from 'node:path';
import fs from 'node:fs';
import { Lab } from '../lab/netns.js';
import { buildTopology } from '../lab/topology.js';
import { README_SOURCES, generateRules, prepareConnector, publishRules, startForwarder, startGateway, teardownGateway } from '../lab/connector.js';
import { applyChange, waitForChecks } from '../lab/checks.js';
import { median } from './stats.js';

/**
 * Change-to-applied latency in the end-to-end lab: the rules are published (gateway file by
 * rename, ConfigMap-style `..data` swap for the forwarder) and the clock stops when both the
 * forwarder (nat rules and tunnels) and the gateway (nat rules) hold the new state. Alternates
 * dropping and restoring the second source.
 */

export interface LatencyMeasurement {
  changes: number;
  medianMs: number;
  maxMs: number;
  samplesMs: number[];
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
    const gateway = await startGateway(lab, topology, connector, key, path.join(logs, 'gateway.log'));
    const forwarder = startForwarder(lab, topology, connector, key, path.join(logs, 'forwarder.log'));
    stopAll = async () => {
      await lab.stop(forwarder);
      await lab.stop(gateway);
      await teardownGateway(lab, topology, connector);
    };
    const checks = await waitForChecks(lab, topology, README_SOURCES, 30_000);
    if (!checks.every((check) => check.ok)) throw new Error(`the lab did not come up: ${JSON.stringify(checks)}`);

    const samplesMs: number[] = [];
    for (let index = 0; index < changes; index++) {
      const sources = index % 2 === 0 ? README_SOURCES.slice(0, 1) : README_SOURCES;
      const timing = await applyChange(lab, topology, connector, sources);
      samplesMs.push(timing.appliedMs);
    }
    return { changes, medianMs: median(samplesMs), maxMs: Math.max(...samplesMs), samplesMs };
  } finally {
    await stopAll().catch(() => undefined);
    await lab.cleanup();
  }
}
