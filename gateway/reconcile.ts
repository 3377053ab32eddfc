import { ConfigError, errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { applyActions } from './apply.js';
import { buildDesired } from './desired.js';
import { readIpsConf } from './ipsconf.js';
import { observe, PRIVSEP_DIR } from './observe.js';
import type { GatewayOptions } from './options.js';
import { plan, type Desired } from './plan.js';
import { readRulesFile, type RulesState } from './rules-file.js';

/**
 * One cycle: read the wanted state (IPS_CONF and the rules file), observe everything afresh,
 * plan, apply. The only memory across cycles is the last valid IP list (kept in force while
 * IPS_CONF is malformed) and what was last logged about the rules file (to log changes once).
 */
export class GatewayReconciler {
  private lastValidIps: string[] | undefined;
  private lastRulesNote = '';

  constructor(
    private readonly options: GatewayOptions,
    private readonly log: Logger,
  ) {}

  /** The IP list in force: IPS_CONF, or its last valid version while it is malformed. */
  private currentIps(problems: string[]): string[] {
    try {
      this.lastValidIps = readIpsConf(this.options.ipsConf);
    } catch (error) {
      if (!(error instanceof ConfigError) || this.lastValidIps === undefined) throw error;
      this.log.error('IP list is invalid; keeping the last valid one', { error: error.message, ips: this.lastValidIps.join(',') });
      problems.push(error.message);
    }
    return this.lastValidIps;
  }

  private currentRules(problems: string[]): RulesState {
    const rules = readRulesFile(this.options.rulesFile);
    const note = rules.kind === 'invalid' ? rules.reason : rules.kind;
    if (rules.kind === 'invalid') problems.push(rules.reason);
    if (note !== this.lastRulesNote) {
      if (rules.kind === 'absent') this.log.info('no rules file yet; nat tables are left as they are', { file: this.options.rulesFile });
      else if (rules.kind === 'invalid') this.log.error('rules file cannot be used; keeping the applied rules', { error: rules.reason });
      else this.log.info('rules file read', { file: this.options.rulesFile });
      this.lastRulesNote = note;
    }
    return rules;
  }

  desired(problems: string[]): Desired {
    return buildDesired(this.options, this.currentIps(problems), this.currentRules(problems));
  }

  /** Runs one cycle; returns the problems that did not stop it (bad input kept out of force). */
  async cycle(signal?: AbortSignal): Promise<string[]> {
    const problems: string[] = [];
    const desired = this.desired(problems);
    const state = await observe(desired.ips, { ...this.options.placement, hostKeyDir: this.options.hostKeyDir, privsepDir: PRIVSEP_DIR }, signal);
    const actions = plan(desired, state);
    if (actions.length === 0) {
      this.log.debug('everything is in place', { ips: desired.ips.length });
      return problems;
    }
    const failures = await applyActions(actions, { sshdPath: this.options.sshdPath, log: this.log, signal });
    if (failures.length > 0) {
      const first = failures[0];
      throw new Error(`${failures.length} action(s) failed; first: ${first ? errorMessage(first.error) : ''}`);
    }
    return problems;
  }
}
