import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  announced,
  buildFailoverLab,
  EXPECTED,
  failOver,
  FAILOVER_IPS,
  holders,
  HolderSampler,
  setLink,
  startFailoverLab,
  startProbes,
  stopFailoverLab,
  waitForRole,
  waitForSecondSource,
  waitForTraffic,
  wrongAnswers,
  type FailoverLab,
} from '../../lab/failover.js';
import { Lab, waitFor } from '../../lab/netns.js';
import { preflightProblems } from '../../lab/preflight.js';

/**
 * Two gateway nodes on the lab's LAN, each running bin/gateway with failover (real keepalived,
 * one per IP), the external server, and the forwarder in its pod checking host keys strictly.
 * Holders are sampled every 100 ms all along; pod -> external and external -> pod requests run
 * every 100 ms. See lab/failover.ts.
 */

const problems = preflightProblems();
const skip = problems.length > 0 ? problems.join(' ') : undefined;
if (skip) console.warn(`failover system tests skipped: ${skip}`);

const ALL_ON = (node: 'A' | 'B'): Record<string, ('A' | 'B')[]> => Object.fromEntries(FAILOVER_IPS.map((ip) => [ip, [node]]));

/** Builds and starts the lab, the probes and the sampler; returns what afterAll must stop. */
async function setUp(lab: Lab, preempt: boolean): Promise<{ fl: FailoverLab; sampler: HolderSampler }> {
  const fl = await buildFailoverLab(lab);
  await startFailoverLab(fl, { preempt });
  await startProbes(fl);
  await waitForTraffic(fl, Date.now(), 60_000);
  const sampler = new HolderSampler(fl);
  sampler.start();
  return { fl, sampler };
}

async function tearDown(lab: Lab, setup: { fl: FailoverLab; sampler: HolderSampler } | undefined): Promise<void> {
  await setup?.sampler.stop();
  if (setup) await stopFailoverLab(setup.fl).catch((error: unknown) => console.warn(`failover lab teardown: ${String(error)}`));
  lab.adoptLeftovers();
  await lab.cleanup();
}

/** Waits until the sampler has taken `count` more samples (the time to watch for a change that must not happen). */
async function moreSamples(sampler: HolderSampler, count: number): Promise<void> {
  const target = sampler.samples.length + count;
  await waitFor(() => (sampler.samples.length >= target ? true : undefined), 30_000, `${count} more holder samples`);
}

describe.skipIf(skip !== undefined)('failover between two gateway nodes on keepalived (nopreempt, the default)', () => {
  const lab = new Lab('k8xfo');
  let setup: { fl: FailoverLab; sampler: HolderSampler } | undefined;
  const fl = (): FailoverLab => setup!.fl;
  const sampler = (): HolderSampler => setup!.sampler;

  beforeAll(async () => {
    setup = await setUp(lab, false);
  }, 240_000);

  afterAll(async () => {
    await tearDown(lab, setup);
    expect(Lab.leftovers('k8xfo')).toEqual([]);
  }, 120_000);

  it('node B takes both IPs over when node A loses its link, and traffic flows both ways again with the same source IP', async () => {
    expect(await holders(fl())).toEqual(ALL_ON('A'));
    expect(announced(fl().nodes.B)).toEqual(Object.fromEntries(FAILOVER_IPS.map((ip) => [ip, 'BACKUP'])));

    const timing = await failOver(fl(), sampler(), fl().nodes.A, fl().nodes.B, 'link');

    expect(timing.to).toBe('B');
    await waitFor(async () => (JSON.stringify(await holders(fl())) === JSON.stringify(ALL_ON('B')) ? true : undefined), 30_000, 'B to hold both IPs');
    await waitForRole(fl().nodes.A, 'FAULT');
    // The second source works both ways through its own IP too.
    await waitForSecondSource(fl());
    expect(wrongAnswers(fl().probes!.podToExternal, EXPECTED.podToExternal)).toEqual([]);
    expect(wrongAnswers(fl().probes!.externalToPod, EXPECTED.externalToPod)).toEqual([]);
    expect(sampler().doubleHolders()).toEqual([]);
  });

  it('node A comes back as the standby: B keeps the IPs (nopreempt), although A has the higher priority', async () => {
    await setLink(fl(), fl().nodes.A, true);
    await waitForRole(fl().nodes.A, 'BACKUP');
    // Longer than a standby waits for adverts before it takes over (3 x 0.5 s and the skew).
    await moreSamples(sampler(), 30);
    expect(await holders(fl())).toEqual(ALL_ON('B'));
    expect(sampler().doubleHolders()).toEqual([]);
  });

  it("node A takes the IPs over when B's keepalived and sshd are killed; B's gateway removes B's address and B becomes the standby", async () => {
    const timing = await failOver(fl(), sampler(), fl().nodes.B, fl().nodes.A, 'daemons');

    expect(timing.to).toBe('A');
    // B's gateway starts keepalived again, which joins as BACKUP.
    await waitForRole(fl().nodes.B, 'BACKUP');
    expect(await holders(fl())).toEqual(ALL_ON('A'));
    expect(fl().nodes.B.process?.output()).toContain('keepalived is not running for');
    expect(wrongAnswers(fl().probes!.podToExternal, EXPECTED.podToExternal)).toEqual([]);
    expect(wrongAnswers(fl().probes!.externalToPod, EXPECTED.externalToPod)).toEqual([]);
    expect(sampler().doubleHolders()).toEqual([]);
  });

  it('a standby that loses its own link never takes the IPs, neither while it is cut off nor when it comes back', async () => {
    const cutAtMs = Date.now();
    await setLink(fl(), fl().nodes.B, false);
    await waitForRole(fl().nodes.B, 'FAULT');
    await moreSamples(sampler(), 30);
    await setLink(fl(), fl().nodes.B, true);
    await waitForRole(fl().nodes.B, 'BACKUP');
    await moreSamples(sampler(), 30);

    const since = sampler().samples.filter((sample) => sample.atMs >= cutAtMs);
    expect(since.length).toBeGreaterThanOrEqual(60);
    expect(since.filter((sample) => FAILOVER_IPS.some((ip) => sample.holders[ip]?.join() !== 'A'))).toEqual([]);
    // Traffic went on through A all the while.
    await waitForTraffic(fl(), Date.now());
  });

  it('no 100 ms sample of the whole run shows two holders of one IP', () => {
    expect(sampler().samples.length).toBeGreaterThan(100);
    expect(sampler().doubleHolders()).toEqual([]);
  });
});

describe.skipIf(skip !== undefined)('failover between two gateway nodes on keepalived, with preemption', () => {
  const lab = new Lab('k8xfp');
  let setup: { fl: FailoverLab; sampler: HolderSampler } | undefined;
  const fl = (): FailoverLab => setup!.fl;
  const sampler = (): HolderSampler => setup!.sampler;

  beforeAll(async () => {
    setup = await setUp(lab, true);
  }, 240_000);

  afterAll(async () => {
    await tearDown(lab, setup);
    expect(Lab.leftovers('k8xfp')).toEqual([]);
  }, 120_000);

  it('node A, with the higher priority, takes the IPs back when its link returns, and traffic flows through it again', async () => {
    await failOver(fl(), sampler(), fl().nodes.A, fl().nodes.B, 'link');
    expect(await holders(fl())).toEqual(ALL_ON('B'));

    const backAtMs = Date.now();
    await setLink(fl(), fl().nodes.A, true);
    await waitForRole(fl().nodes.A, 'MASTER');
    await waitForRole(fl().nodes.B, 'BACKUP');
    expect(await holders(fl())).toEqual(ALL_ON('A'));
    await waitForTraffic(fl(), backAtMs);
    expect(wrongAnswers(fl().probes!.podToExternal, EXPECTED.podToExternal)).toEqual([]);
    expect(wrongAnswers(fl().probes!.externalToPod, EXPECTED.externalToPod)).toEqual([]);
    expect(sampler().doubleHolders()).toEqual([]);
  });
});
