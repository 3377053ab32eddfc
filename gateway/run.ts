import { createLogger } from '../lib/log.js';
import { runLoop } from '../lib/loop.js';
import { abortOnSignals } from '../lib/signals.js';
import type { GatewayOptions } from './options.js';
import { GatewayReconciler } from './reconcile.js';

/**
 * `gateway [--once] IPS_CONF`: one cycle, or the loop that reconciles every interval and soon
 * after IPS_CONF or the rules file changes, until SIGINT/SIGTERM.
 */
export async function runGateway(options: GatewayOptions, once: boolean): Promise<void> {
  const log = createLogger('gateway');
  const reconciler = new GatewayReconciler(options, log);
  if (once) {
    const problems = await reconciler.cycle();
    if (problems.length > 0) throw new Error(problems.join('; '));
    return;
  }
  // Bad input at start is an error; later, the last valid IP list stays in force.
  await reconciler.desired([]);
  const controller = abortOnSignals(log);
  log.info('starting', {
    ips: options.ipsConf,
    rules: options.rulesFile,
    interval: `${options.intervalMs / 1000}s`,
  });
  await runLoop({
    reconcile: async (signal) => {
      await reconciler.cycle(signal);
    },
    log,
    intervalMs: options.intervalMs,
    signal: controller.signal,
    watch: [
      { path: options.ipsConf, kind: 'file' },
      { path: options.rulesFile, kind: 'file' },
    ],
  });
  log.info('stopped');
}
