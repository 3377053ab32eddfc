import os from 'node:os';

/** The middle value (the upper one of an even count); 0 for no values. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** The nearest-rank percentile (p from 0 to 1) of the values; 0 for no values. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
}

/** Samples the 1-minute load average every 5 s, and once more when stopped (the first stop only). */
export function sampleLoad(): { samples: number[]; stop: () => void } {
  const samples = [os.loadavg()[0] ?? 0];
  const timer = setInterval(() => samples.push(os.loadavg()[0] ?? 0), 5000);
  timer.unref();
  let running = true;
  return {
    samples,
    stop: () => {
      if (!running) return;
      running = false;
      clearInterval(timer);
      samples.push(os.loadavg()[0] ?? 0);
    },
  };
}
