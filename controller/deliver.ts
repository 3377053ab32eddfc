import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../lib/log.js';
import { applyActions, type ActionFailure } from './apply.js';
import { planDeliveries, type DeliverySettings } from './plan.js';

/**
 * Sends the rules to every gateway host that has not received them yet: `scp` to a temporary
 * name next to the destination, then `ssh HOST mv -f -- TMP DEST`, a rename on the gateway's
 * filesystem, so the gateway never sees a partial file. (The remote command line goes through
 * the gateway user's shell; both paths are restricted to [A-Za-z0-9_./-] by the settings.)
 */

export interface DeliveryOutcome {
  /** host -> sha256 of the rules it received in this cycle. */
  deliveredNow: Record<string, string>;
  failures: ActionFailure[];
}

export async function deliverRules(
  input: { hosts: readonly string[]; delivered: Readonly<Record<string, string>>; rules: string; rulesSha256: string },
  settings: DeliverySettings,
  options: { log: Logger; signal?: AbortSignal },
): Promise<DeliveryOutcome> {
  const outcome: DeliveryOutcome = { deliveredNow: {}, failures: [] };
  if (input.hosts.every((host) => input.delivered[host] === input.rulesSha256)) return outcome;
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'k8s-ext-rules-'));
  try {
    const localFile = path.join(directory, 'rules.yaml');
    await fs.writeFile(localFile, input.rules, { mode: 0o600 });
    const deliveries = planDeliveries({ hosts: input.hosts, delivered: input.delivered, rulesSha256: input.rulesSha256, localFile }, settings);
    for (const delivery of deliveries) {
      const failures = await applyActions(delivery.actions, { ...options, stopOnFailure: true });
      if (failures.length === 0) outcome.deliveredNow[delivery.host] = input.rulesSha256;
      outcome.failures.push(...failures);
    }
  } finally {
    await fs.rm(directory, { recursive: true, force: true });
  }
  return outcome;
}
