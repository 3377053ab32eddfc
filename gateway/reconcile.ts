import { ConfigError, errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { isDebug } from '../lib/exec.js';
import { applyGatewayActions } from './apply.js';
import { buildDesired } from './desired.js';
import { readIpsConf } from './ipsconf.js';
import { observe, observeKeepalived, observeSessions, observeSshd, observeSshdConfigs, observeUnvouched, PRIVSEP_DIR, reloadTookEffectAtMs, runningDaemons, type GatewayState } from './observe.js';
import { namesFor } from './names.js';
import type { GatewaySettings } from './settings.js';
import { planGateway, planPermitsFirst, planRelease, planStaleSessions, type Desired, type SessionCheck } from './plan.js';
import type { ActionFailure } from '../lib/action.js';
import { readRulesFile, type ParsedRulesFile, type RulesState } from './rules-file.js';
import { checkRouterIds } from './vrrp.js';
import { isRunning } from './proc.js';

/** IPS_CONF as the gateway uses it: with failover, the IPs' VRRP router ids must not collide. */
export function readGatewayIps(options: Pick<GatewaySettings, 'ipsConf' | 'vrrp'>): string[] {
  const ips = readIpsConf(options.ipsConf);
  if (options.vrrp) checkRouterIds(ips, options.ipsConf);
  return ips;
}

/** Why failover cannot work with these host keys, if it cannot. */
export function hostKeyProblem(options: Pick<GatewaySettings, 'hostKeyDir' | 'vrrp'>, state: GatewayState): string | undefined {
  if (!options.vrrp || state.hostKeys.length > 0) return undefined;
  return (
    `HOST_KEY_DIR ${options.hostKeyDir} has no ssh_host_*_key: with failover every gateway node must present the same host key ` +
    'for an IP, so none is generated; copy one set of host keys into HOST_KEY_DIR on every gateway node'
  );
}

/** What a cycle left: the problems that did not stop it, and whether it changed anything (ran actions). */
export interface CycleOutcome {
  problems: string[];
  changed: boolean;
}

/**
 * One cycle: read the wanted state (IPS_CONF and the rules file), observe everything afresh,
 * plan, apply. The only memory across cycles is the last valid IP list (kept in force while
 * IPS_CONF is malformed), what was last logged about the rules file (to log changes once), and
 * the document parsed from the last valid rules file (reused while its text stays the same).
 */
export class GatewayReconciler {
  private lastValidIps: string[] | undefined;
  private lastRulesNote = '';
  private readonly parsedRules: { last?: ParsedRulesFile | undefined } = {};
  /** The daemons the last cycle saw running: the loop looks out for their exit between cycles. */
  private watchedPids: number[] = [];

  constructor(
    private readonly options: GatewaySettings,
    private readonly log: Logger,
  ) {}

  /** The IP list in force: IPS_CONF, or its last valid version while it is malformed. */
  private currentIps(problems: string[]): string[] {
    try {
      this.lastValidIps = readGatewayIps(this.options);
    } catch (error) {
      if (!(error instanceof ConfigError) || this.lastValidIps === undefined) throw error;
      this.log.error('IP list is invalid; keeping the last valid one', { error: error.message, ips: this.lastValidIps.join(',') });
      problems.push(error.message);
    }
    return this.lastValidIps;
  }

  private currentRules(problems: string[]): RulesState {
    const rules = readRulesFile(this.options.rulesFile, this.parsedRules);
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

  /**
   * Once the reloads of `checks` (sent after `hupSentAtMs`) have taken effect: observe those
   * netns's sessions, plan the stop of those opened under the previous config (pure), apply.
   */
  private async stopStaleSessions(
    checks: readonly SessionCheck[],
    failures: readonly ActionFailure[],
    hupSentAtMs: number,
    signal?: AbortSignal,
  ): Promise<ActionFailure[]> {
    const failedIps = new Set(failures.map((failure) => failure.action.scope));
    const wanted = checks.filter((check) => !failedIps.has(check.ip));
    if (wanted.length === 0) return [];
    const stops = await Promise.all(
      wanted.map(async (check) => {
        const tookEffectAtMs = isDebug() ? Date.now() : await reloadTookEffectAtMs(check.pidFile, hupSentAtMs, RELOAD_TIMEOUT_MS, signal);
        if (tookEffectAtMs === undefined) {
          this.log.warn('sshd did not come back from its reload; every session opened until now counts as opened under the previous config', { ip: check.ip });
        }
        // A pid file's time comes from a coarse clock and a start time is in 10 ms ticks: the margin
        // keeps a session the old sshd accepted just before it re-executed among the stale ones.
        const reloadedAtMs = tookEffectAtMs === undefined ? Date.now() : tookEffectAtMs + START_TIME_MARGIN_MS;
        return planStaleSessions(check, await observeSessions(check.netns, signal), reloadedAtMs);
      }),
    );
    return applyGatewayActions(stops.flat(), { log: this.log, signal });
  }

  /**
   * Runs one cycle. With failover, addresses that no running keepalived vouches for go first
   * (see releaseUnvouched). Then the sshds that run get the config the rules need and are reloaded
   * (planned from files alone, see planPermitsFirst), so that new forwards are permitted as soon
   * as possible; then everything is observed, planned and applied. A reload that widens what an
   * sshd permits is followed by a second, smaller round once it has taken effect (see
   * stopStaleSessions), alongside the rest of the cycle. Returns the problems that did not stop
   * the cycle (bad input kept out of force), and whether it ran any action.
   */
  async cycle(signal?: AbortSignal): Promise<CycleOutcome> {
    try {
      return await this.reconcile(signal);
    } finally {
      // Read after the cycle, so that the daemons it started are watched too.
      this.watchedPids = runningDaemons(this.lastValidIps ?? [], this.options.placement);
    }
  }

  private async reconcile(signal?: AbortSignal): Promise<CycleOutcome> {
    const problems: string[] = [];
    const desired = this.desired(problems);
    // Before anything else: another node takes an unvouched address over within seconds.
    const released = desired.vrrp ? await this.releaseUnvouched(desired, signal) : false;
    const observeOptions = { ...this.options.placement, hostKeyDir: this.options.hostKeyDir, privsepDir: PRIVSEP_DIR, failover: desired.vrrp !== undefined };
    // Under DEBUG nothing is written, so the full plan would print the same commands again.
    const first = isDebug() ? { actions: [], sessionChecks: [] } : planPermitsFirst(desired, observeSshdConfigs(desired.ips, observeOptions));
    const firstSentAtMs = Date.now();
    const failures = await applyGatewayActions(first.actions, { log: this.log, signal });
    const staleStops = this.stopStaleSessions(first.sessionChecks, failures, firstSentAtMs, signal).catch((error: unknown) => {
      this.log.error('looking for ssh sessions opened under the previous config failed', { error: errorMessage(error) });
      return [];
    });
    const state = await observe(desired.ips, observeOptions, signal);
    const keyProblem = hostKeyProblem(this.options, state);
    if (keyProblem) throw new Error(keyProblem);
    const planned = planGateway(desired, state);
    if (planned.actions.length === 0 && first.actions.length === 0) {
      this.log.debug('everything is in place', { ips: desired.ips.length });
      return { problems, changed: released };
    }
    const laterSentAtMs = Date.now();
    const later = await applyGatewayActions(planned.actions, { log: this.log, signal });
    failures.push(...later, ...(await this.stopStaleSessions(planned.sessionChecks, later, laterSentAtMs, signal)), ...(await staleStops));
    if (failures.length > 0) {
      const first = failures[0];
      throw new Error(`${failures.length} action(s) failed; first: ${first ? errorMessage(first.error) : ''}`);
    }
    return { problems, changed: true };
  }

  /**
   * With failover, first gives up the addresses that no running keepalived vouches for (its
   * keepalived was killed): another node takes such an IP over after three missed adverts, so
   * this cannot wait for the full observation of every IP.
   */
  private async releaseUnvouched(desired: Desired, signal?: AbortSignal): Promise<boolean> {
    const unvouched = await observeUnvouched(desired.ips, this.options.placement, signal);
    const actions = unvouched.flatMap(({ names, addresses }) => planRelease(names, addresses, false, desired.network.prefixLength));
    if (actions.length > 0) await applyGatewayActions(actions, { log: this.log, signal });
    return actions.length > 0;
  }

  /**
   * Whether a cycle is due between cycles: a daemon seen running at the end of the last cycle has
   * exited (keepalived or sshd killed), or one the gateway keeps running does not run (it died
   * before the last cycle ended). Read from pid files and /proc, not with ps: this runs five times
   * a second.
   */
  daemonMissing(): boolean {
    if (this.watchedPids.some((pid) => !isRunning(pid))) return true;
    return (this.lastValidIps ?? []).some((ip) => {
      const names = namesFor(ip, this.options.placement);
      return !observeSshd(names).running || (this.options.vrrp?.keepalived === 'managed' && !observeKeepalived(names).running);
    });
  }
}

/** How long a reloaded sshd may take to run again with its new config. */
const RELOAD_TIMEOUT_MS = 10_000;
const START_TIME_MARGIN_MS = 20;
