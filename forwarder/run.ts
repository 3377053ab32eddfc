import { ConfigError, TerminalError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { runLoop, runOnce, type ReconcileResult } from '../lib/loop.js';
import { runningPids } from '../lib/process.js';
import { abortOnSignals } from '../lib/signals.js';
import { applyForwarderActions } from './apply.js';
import type { ForwarderSettings } from './settings.js';
import { ConfigMapWatch, readConfigMapOnce } from './configmap-watch.js';
import { desiredFromSources, type RulesMemory } from './desired.js';
import { describeTarget, type ApiRules } from './rules-source.js';
import { observe } from './observe.js';
import { plan } from './plan.js';

/**
 * After a cycle that started tunnels, the next one comes this soon: a tunnel that dies right
 * after starting (the gateway ended a session its sshd accepted while it reloaded for the same
 * rules change, a few tens of ms after it) is then restarted within a second instead of at the
 * next resync. That cycle also adds the new tunnels to those the liveness check watches (ssh -f
 * forks: their pids are known only by looking).
 */
export const RECHECK_AFTER_START_MS = 300;

/**
 * The first retry after a failed cycle (doubling up to the interval, see lib/loop). A tunnel start
 * fails mostly while the gateway reloads its sshd for the same change (refused, or its session
 * ended): by the time the failure is known the reload is usually done.
 */
export const RETRY_AFTER_FAILURE_MS = 50;

/**
 * Between cycles, the loop checks this often that the tunnels of the last cycle still run, so
 * that one that exited (its gateway went away, ServerAlive gave up) is restarted within half a
 * second rather than at the next resync.
 */
export const TUNNEL_CHECK_MS = 500;

/** The tunnels the last cycle saw running and kept: the ones whose exit the loop looks out for. */
export interface WatchedTunnels {
  pids: number[];
}

/** True when a watched tunnel no longer runs. */
export async function watchedTunnelExited(watched: WatchedTunnels): Promise<boolean> {
  if (watched.pids.length === 0) return false;
  return (await runningPids(watched.pids)).length < watched.pids.length;
}

/** The rules' sources in a cycle: the API's copy (when watched) and what the forwarder remembers about them. */
export interface RulesInput {
  api: ApiRules | undefined;
  memory: RulesMemory;
}

/** One cycle: take the rules (the API's copy or the data file), observe the pod, plan, apply. */
export async function reconcile(
  settings: ForwarderSettings,
  log: Logger,
  signal: AbortSignal,
  watched?: WatchedTunnels,
  rules: RulesInput = { api: undefined, memory: {} },
): Promise<ReconcileResult> {
  const { desired, source } = desiredFromSources(settings, rules.api, rules.memory);
  if (source !== rules.memory.lastSource) {
    log.info(`rules from ${source}`);
    rules.memory.lastSource = source;
  }
  if (!desired.hasEntry) log.debug('no entry for this name in the rules: no tunnels and no rules wanted', { name: settings.name });
  const observed = await observe(settings, signal);
  const actions = plan(desired, observed, settings.ssh);
  if (watched) {
    const stopping = new Set(actions.flatMap((action) => action.stops ?? []));
    watched.pids = observed.tunnels.map((tunnel) => tunnel.pid).filter((pid) => !stopping.has(pid));
  }
  if (actions.length === 0) {
    log.debug('in sync', { tunnels: desired.tunnels.length, rules: desired.rules.length });
    return {};
  }
  const failures = await applyForwarderActions(actions, { log, signal });
  if (failures.length > 0) throw new Error(`${failures.length} of ${actions.length} changes failed (see above)`);
  return actions.some((action) => action.daemonizes) ? { changed: true, requeueAfterMs: RECHECK_AFTER_START_MS } : { changed: true };
}

/**
 * `--once` runs one cycle. Otherwise the loop runs until SIGINT/SIGTERM, watching the data
 * file's directory (a ConfigMap volume swaps its `..data` symlink). On exit the tunnels and the
 * nat table are left as they are: in a pod the container's end stops the tunnels anyway, and a
 * forwarder restarted outside a container adopts them without a break in traffic.
 */
export async function runForwarder(settings: ForwarderSettings, once: boolean, log: Logger): Promise<void> {
  const controller = abortOnSignals(log);
  if (once) {
    await runOnce(async (signal) => reconcile(settings, log, signal, undefined, { api: await readApiOnce(settings, log, signal), memory: {} }), controller.signal);
    return;
  }
  log.info('starting', {
    name: settings.name,
    dataFile: settings.dataFile,
    ...(settings.rulesConfigMap ? { rulesConfigMap: describeTarget(settings.rulesConfigMap) } : {}),
    interval: `${settings.intervalMs / 1000}s`,
  });
  const watched: WatchedTunnels = { pids: [] };
  const apiWatch = settings.rulesConfigMap ? new ConfigMapWatch(settings.rulesConfigMap, log, settings.intervalMs) : undefined;
  const memory: RulesMemory = {};
  await runLoop({
    log,
    intervalMs: settings.intervalMs,
    backoffMs: RETRY_AFTER_FAILURE_MS,
    signal: controller.signal,
    watch: [{ path: settings.dataFile, kind: 'file' }],
    poll: { everyMs: TUNNEL_CHECK_MS, changed: () => watchedTunnelExited(watched) },
    sources: apiWatch ? [(trigger, signal) => apiWatch.run(signal, trigger)] : [],
    reconcile: async (signal) => {
      try {
        return await reconcile(settings, log, signal, watched, { api: apiWatch?.state(), memory });
      } catch (error) {
        // Bad rules are fixed by a change to them (which the watches see), not by retrying.
        if (error instanceof ConfigError) throw new TerminalError(`${error.message}; keeping the tunnels and rules that are applied`);
        throw error;
      }
    },
  });
  log.info('stopped; tunnels and nat rules left in place');
}

/** For `--once`: one read of the ConfigMap through the API, when one is configured. */
export async function readApiOnce(settings: ForwarderSettings, log: Logger, signal?: AbortSignal): Promise<ApiRules | undefined> {
  if (!settings.rulesConfigMap) return undefined;
  const api = await readConfigMapOnce(settings.rulesConfigMap, signal);
  if (api.error !== undefined) log.warn(`cannot read ${describeTarget(settings.rulesConfigMap)} through the API; using the data file`, { error: api.error });
  return api;
}
