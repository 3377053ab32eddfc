import fs from 'node:fs';
import { inputProblems } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { runLoop } from '../lib/loop.js';
import { abortOnSignals } from '../lib/signals.js';
import type { GatewaySettings } from './settings.js';
import { vrrpStateDir } from './names.js';
import { GatewayReconciler } from './reconcile.js';

/**
 * Between cycles, the loop checks this often that the daemons it saw (sshd, keepalived) still
 * run. A holder whose keepalived died must lose its address before a standby takes it over
 * (three adverts later), so this is well below three advert intervals.
 */
export const DAEMON_CHECK_MS = 200;

/**
 * `gateway [--once] IPS_CONF`: one cycle, or the loop that reconciles every interval and soon
 * after IPS_CONF or the rules file changes, until SIGINT/SIGTERM.
 */
export async function runGateway(options: GatewaySettings, once: boolean): Promise<void> {
  const log = createLogger('gateway');
  const reconciler = new GatewayReconciler(options, log);
  const controller = abortOnSignals(log);
  if (once) {
    // Bad input (a malformed rules file) is reported after everything else was applied.
    const { problems } = await reconciler.cycle(controller.signal);
    if (problems.length > 0) throw inputProblems(problems);
    return;
  }
  // Bad input at start is an error; later, the last valid IP list stays in force.
  reconciler.desired([]);
  log.info('starting', {
    ips: options.ipsConf,
    rules: options.rulesFile,
    interval: `${options.intervalMs / 1000}s`,
    failover: options.vrrp ? `keepalived ${options.vrrp.keepalived}, priority ${options.vrrp.priority}${options.vrrp.preempt ? ', preempt' : ''}` : 'off',
  });
  const stateDir = vrrpStateDir(options.placement.runDir);
  // keepalived's notify command records each transition there: a new file starts a cycle.
  if (options.vrrp) fs.mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  await runLoop({
    reconcile: async (signal) => ({ changed: (await reconciler.cycle(signal)).changed }),
    log,
    intervalMs: options.intervalMs,
    signal: controller.signal,
    watch: [
      { path: options.ipsConf, kind: 'file' },
      { path: options.rulesFile, kind: 'file' },
      ...(options.vrrp ? [{ path: stateDir, kind: 'dir' as const }] : []),
    ],
    poll: { everyMs: DAEMON_CHECK_MS, changed: async () => reconciler.daemonMissing() },
  });
  log.info('stopped');
}
