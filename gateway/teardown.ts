import { applyTeardown } from '../lib/action.js';
import { createLogger } from '../lib/log.js';
import { abortOnSignals } from '../lib/signals.js';
import { applyGatewayActions } from './apply.js';
import { readIpsConf } from './ipsconf.js';
import type { Placement } from './names.js';
import { observe, PRIVSEP_DIR } from './observe.js';
import { planTeardown } from './plan.js';

/**
 * `gateway teardown IPS_CONF`: removes what setup made for each listed IP (sshd, pid file,
 * config, netns with its device). Idempotent: with nothing left it does nothing and succeeds.
 */
export async function teardownGateway(ipsConf: string, placement: Placement): Promise<void> {
  const log = createLogger('gateway');
  const aborter = abortOnSignals(log);
  const ips = readIpsConf(ipsConf);
  const state = await observe(ips, { ...placement, privsepDir: PRIVSEP_DIR }, aborter.signal);
  const actions = planTeardown(ips, state, placement);
  await applyTeardown(actions, (planned) => applyGatewayActions(planned, { log, signal: aborter.signal }), log, { ips: ips.length });
}
