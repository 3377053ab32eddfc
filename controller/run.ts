import path from 'node:path';
import { ConfigError, errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { runLoop, runOnce, type ReconcileResult } from '../lib/loop.js';
import { abortOnSignals } from '../lib/signals.js';
import { throwIfAborted, type ActionFailure } from '../lib/action.js';
import { applyControllerActions } from './apply.js';
import { withRulesFile } from './deliver.js';
import { desiredRules, readConf, resolveConf, type InvalidConf } from './desired.js';
import { DELIVERED_ANNOTATION, parseStringMap } from './objects.js';
import { observeCluster } from './observe.js';
import {
  configMapAfterInit,
  deliveredAfter,
  desiredForwarderConfigMaps,
  hostsLacking,
  objectActions,
  planCycleObjects,
  planDeliveries,
  planForwarderConfigMaps,
  planState,
  rememberedConf,
} from './plan.js';
import type { ControllerSettings } from './settings.js';

/**
 * One reconcile cycle of the controller, and the loop around it. Each cycle reads everything
 * afresh (conf files first, then one cluster snapshot), then:
 *   plan:  namespace, secret, state ConfigMap (when missing), each forwarder's ServiceAccount,
 *          Role, RoleBinding, ConfigMap (when missing), pod and Service, leftovers, and the copy
 *          of the gateways' rules to every gateway host that has not received them;
 *   apply: those actions;
 *   plan:  the forwarder ConfigMaps whose rules changed, and the state ConfigMap (which rules
 *          each gateway host received), from the delivery outcomes; apply them.
 * The publish is planned second because the gateways must hold the new rules before any forwarder
 * sees them, and the state records which hosts received them, known only once the copies ran; it
 * is still a pure function of what was observed and of which delivery scopes failed. A failing
 * read ends the cycle before anything is published.
 */

/** How soon to look again while a forwarder pod has no IP yet (its rules wait for it). */
const POD_IP_REQUEUE_MS = 2000;

export interface CycleReport {
  invalid: InvalidConf[];
  failures: ActionFailure[];
  /** ExternalServices whose forwarder pod is missing or has no IP yet in this cycle's snapshot. */
  podsWithoutIP: string[];
  /** Number of mutating commands planned (run, or printed under DEBUG). */
  changes: number;
}

export interface CycleContext {
  log: Logger;
  signal: AbortSignal;
  /** Warnings of the previous cycle: repeated ones are logged at debug level only. */
  previousWarnings?: Set<string>;
}

export async function reconcileCycle(settings: ControllerSettings, context: CycleContext): Promise<CycleReport> {
  const { log, signal } = context;
  const { entries, skipped } = await readConf(settings.confDir);
  // Bad files are reported before any kubectl call; what stays in force is known after the reads.
  for (const invalid of resolveConf(entries, {}).invalid) {
    for (const error of invalid.errors) log.error(`invalid conf file: ${error.message}`);
  }
  throwIfAborted(signal);
  const observed = await observeCluster(settings, { signal });
  throwIfAborted(signal);

  const conf = resolveConf(entries, rememberedConf(observed.configMap, observed.forwarderObjects.configMaps));
  for (const invalid of conf.invalid) {
    log.error(
      invalid.lastValidInForce
        ? `${invalid.file}: its last valid version stays in force until it is fixed`
        : `${invalid.file}: ignored until it is fixed (no valid version of it is known)`,
    );
  }
  const rules = desiredRules(conf.services, observed.snapshot, settings.namespace);
  for (const error of rules.errors) log.error(error.message);
  // An ExternalService whose rules cannot be written counts as invalid input.
  const invalid = conf.invalid.concat(rules.errors.map((error) => ({ file: error.file, errors: [error], lastValidInForce: false })));
  logWarnings(log, [...skipped.map((entry) => entry.message), ...conf.warnings, ...rules.warnings], context.previousWarnings);
  const stateAnnotations = observed.configMap?.annotations ?? {};
  const delivery = { hosts: settings.gatewayHosts, delivered: parseStringMap(stateAnnotations[DELIVERED_ANNOTATION]), rulesSha256: rules.gateway.sha256 };
  const forwarders = desiredForwarderConfigMaps(conf.services, rules.forwarders, conf.lastValid, settings);
  for (const problem of forwarders.problems) log.error(problem);
  const tooLarge = forwarders.problems.map((problem) => ({ action: { reason: 'publish a forwarder ConfigMap', argv: [] }, error: new Error(problem) }));

  const objects = objectActions(planCycleObjects(conf, observed, forwarders.configMaps, settings), settings);
  const applyPlan = async (localFile: string | undefined): Promise<{ actions: number; failures: ActionFailure[] }> => {
    const actions = [...objects, ...(localFile === undefined ? [] : planDeliveries({ ...delivery, localFile }, settings))];
    return { actions: actions.length, failures: await applyControllerActions(actions, { log, signal }) };
  };
  const podIPs = new Map(observed.snapshot.pods.filter((pod) => pod.namespace === settings.namespace).map((pod) => [pod.name, pod.podIP]));
  const podsWithoutIP = conf.services.filter((service) => podIPs.get(service.name) === undefined).map((service) => service.name);

  // The gateways first: a forwarder must never ask for a tunnel its gateway does not permit yet.
  const first = hostsLacking(delivery.hosts, delivery.delivered, delivery.rulesSha256).length > 0 ? await withRulesFile(rules.gateway.text, applyPlan) : await applyPlan(undefined);

  const failedScopes = new Set(first.failures.map((failure) => failure.action.scope));
  const delivered = deliveredAfter(delivery, failedScopes);
  const publish = objectActions(
    [
      ...planForwarderConfigMaps(forwarders.configMaps, observed.forwarderObjects.configMaps, settings),
      ...planState({ delivered, dropLegacy: first.failures.length === 0 && tooLarge.length === 0 }, configMapAfterInit(observed.configMap), settings),
    ],
    settings,
  );
  const failures = [...first.failures, ...tooLarge, ...(await applyControllerActions(publish, { log, signal }))];
  return { invalid, failures, podsWithoutIP, changes: first.actions + publish.length };
}

function logWarnings(log: Logger, warnings: readonly string[], previous: Set<string> | undefined): void {
  for (const warning of warnings) {
    if (previous?.has(warning)) log.debug(warning);
    else log.warn(warning);
  }
  if (previous) {
    previous.clear();
    for (const warning of warnings) previous.add(warning);
  }
}

export class CycleFailedError extends Error {
  override name = 'CycleFailedError';
}

function failureSummary(failures: readonly ActionFailure[]): string {
  const first = failures[0];
  const detail = first ? `: ${first.action.reason}: ${errorMessage(first.error).split('\n')[0] ?? ''}` : '';
  return `${failures.length} step(s) failed${detail}`;
}

/** `controller [--once] CONF_DIR`. */
export async function runController(settings: ControllerSettings, options: { once: boolean; log: Logger }): Promise<void> {
  const { log } = options;
  const aborter = abortOnSignals(log);
  const previousWarnings = new Set<string>();
  const cycle = async (signal: AbortSignal): Promise<CycleReport> => {
    const report = await reconcileCycle(settings, { log, signal, previousWarnings });
    if (report.changes > 0) log.info(`cycle done: ${report.changes} change(s)`);
    else log.debug('cycle done: nothing to change');
    return report;
  };

  if (options.once) {
    await runOnce(async (signal) => {
      const report = await cycle(signal);
      // Bad input comes first (exit code 2): everything else was applied, or tried.
      if (report.invalid.length > 0) {
        const files = report.invalid.map((invalid) => path.basename(invalid.file)).join(', ');
        const failed = report.failures.length > 0 ? `; ${failureSummary(report.failures)}` : '';
        throw new ConfigError(settings.confDir, undefined, `${report.invalid.length} invalid conf file(s): ${files} (everything else was applied${failed})`);
      }
      if (report.failures.length > 0) throw new CycleFailedError(failureSummary(report.failures));
    }, aborter.signal);
    return;
  }

  log.info('controller started', {
    confDir: settings.confDir,
    namespace: settings.namespace,
    gateways: settings.gatewayHosts.join(','),
    interval: `${settings.intervalMs / 1000}s`,
  });
  await runLoop({
    reconcile: async (signal): Promise<ReconcileResult> => {
      const report = await cycle(signal);
      if (report.failures.length > 0) throw new CycleFailedError(failureSummary(report.failures));
      const changed = report.changes > 0;
      return report.podsWithoutIP.length > 0 ? { changed, requeueAfterMs: Math.min(POD_IP_REQUEUE_MS, settings.intervalMs) } : { changed };
    },
    log,
    intervalMs: settings.intervalMs,
    signal: aborter.signal,
    watch: [{ path: settings.confDir, kind: 'dir' }],
  });
  log.info('controller stopped');
}
