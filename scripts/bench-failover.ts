import { Lab } from '../lab/netns.js';
import {
  buildFailoverLab,
  EXPECTED,
  failOver,
  HolderSampler,
  setLink,
  startFailoverLab,
  startProbes,
  stopFailoverLab,
  waitForRole,
  waitForTraffic,
  wrongAnswers,
  type FailoverLab,
  type FailoverTiming,
} from '../lab/failover.js';
import { median } from './stats.js';

/**
 * Failover in the failover lab (lab/failover.ts): two gateway nodes with keepalived, the
 * forwarder, and requests both ways every 100 ms. Each failover cuts the link of the node that
 * holds the IPs and measures until the other node holds them and traffic works both ways again;
 * the cut node then comes back as the standby (nopreempt) and the next failover goes the other
 * way. Holders are sampled every 100 ms throughout.
 */

export interface FailoverMetric {
  medianMs: number;
  maxMs: number;
  samplesMs: number[];
}

export interface FailoverMeasurement {
  failovers: number;
  advertIntervalS: number;
  timings: FailoverTiming[];
  ipMoved: FailoverMetric;
  podToExternal: FailoverMetric;
  externalToPod: FailoverMetric;
  /** Requests answered during the whole run, and those answered with the wrong source IP (or by the wrong pod). */
  answered: number;
  wrongAnswers: number;
  /** Holder samples taken, and those in which some IP had two holders. */
  samples: number;
  doubleHolderSamples: number;
}

function metric(values: number[]): FailoverMetric {
  return { medianMs: median(values), maxMs: Math.max(...values), samplesMs: values };
}

export async function benchFailover(failovers = 4): Promise<FailoverMeasurement> {
  const lab = new Lab('k8xbf');
  let fl: FailoverLab | undefined;
  let sampler: HolderSampler | undefined;
  try {
    fl = await buildFailoverLab(lab);
    await startFailoverLab(fl);
    await startProbes(fl);
    await waitForTraffic(fl, Date.now(), 60_000);
    sampler = new HolderSampler(fl);
    sampler.start();
    const timings: FailoverTiming[] = [];
    let [holder, standby] = [fl.nodes.A, fl.nodes.B];
    for (let index = 0; index < failovers; index++) {
      timings.push(await failOver(fl, sampler, holder, standby, 'link'));
      await waitForRole(holder, 'FAULT');
      await setLink(fl, holder, true);
      await waitForRole(holder, 'BACKUP');
      [holder, standby] = [standby, holder];
      // Both ways work through the new holder before the next failover.
      await waitForTraffic(fl, Date.now());
    }
    await sampler.stop();
    const probes = fl.probes!;
    const answered = [...probes.podToExternal.results(), ...probes.externalToPod.results()].filter((result) => result.ok).length;
    return {
      failovers,
      advertIntervalS: 0.5,
      timings,
      ipMoved: metric(timings.map((timing) => timing.ipMovedMs)),
      podToExternal: metric(timings.map((timing) => timing.podToExternalMs)),
      externalToPod: metric(timings.map((timing) => timing.externalToPodMs)),
      answered,
      wrongAnswers: wrongAnswers(probes.podToExternal, EXPECTED.podToExternal).length + wrongAnswers(probes.externalToPod, EXPECTED.externalToPod).length,
      samples: sampler.samples.length,
      doubleHolderSamples: sampler.doubleHolders().length,
    };
  } finally {
    await sampler?.stop();
    if (fl) await stopFailoverLab(fl).catch(() => undefined);
    lab.adoptLeftovers();
    await lab.cleanup();
  }
}

/** The failover table: each measure's median and max beside its target; the original has no standby at all. */
export function renderFailover(measurement: FailoverMeasurement, table: (header: string[], rows: string[][]) => string): string {
  const row = (what: string, value: FailoverMetric, target: string): string[] => [what, String(Math.round(value.medianMs)), String(Math.round(value.maxMs)), target, 'never (no standby)'];
  return [
    `Failover: the holder's link cut ${measurement.failovers} times, alternately on each of two gateway nodes (keepalived, advert every ${measurement.advertIntervalS} s; requests both ways and holder samples every 100 ms)`,
    table(
      ['from the link cut until', 'median ms', 'max ms', 'target', 'the original'],
      [
        row('the standby holds the IP', measurement.ipMoved, '< 3000 ms'),
        row('pod -> external works (same IP)', measurement.podToExternal, '< 10000 ms'),
        row('external -> pod works', measurement.externalToPod, '< 10000 ms'),
      ],
    ),
    `  requests answered with a wrong source IP: ${measurement.wrongAnswers} of ${measurement.answered} answered (target 0)`,
    `  100 ms samples with two holders of one IP: ${measurement.doubleHolderSamples} of ${measurement.samples} (target 0)`,
  ].join('\n');
}
