import { describe, expect, it } from 'vitest';
import { cycleEnds, lastChangeAppliedMs, settled, type CycleEnd } from '../../../scripts/bench-latency.js';

const at = (iso: string): number => Date.parse(iso);
const line = (text: string) => ({ atMs: at(text.slice(0, text.indexOf(' '))), text });

describe('bench latency: a change is applied when the last cycle that changed something for it ended', () => {
  const publish = at('2026-01-01T00:00:01.000Z');
  const forwarder = cycleEnds(
    [
      '2026-01-01T00:00:00.500Z DEBUG forwarder cycle 4 done ms=20 changed=false',
      '2026-01-01T00:00:01.030Z DEBUG forwarder change seen, reconciling reason="change"',
      '2026-01-01T00:00:01.150Z ERROR forwarder cycle 5 failed; retrying in 0.1s',
      '2026-01-01T00:00:01.420Z DEBUG forwarder cycle 6 done ms=220 changed=true',
      '2026-01-01T00:00:01.740Z DEBUG forwarder cycle 7 done ms=20 changed=false',
    ].map(line),
  );

  it('reads the cycle ends (start = end - duration) and ignores other lines', () => {
    expect(forwarder).toEqual([
      { cycle: 4, startedMs: at('2026-01-01T00:00:00.480Z'), endedMs: at('2026-01-01T00:00:00.500Z'), changed: false },
      { cycle: 6, startedMs: at('2026-01-01T00:00:01.200Z'), endedMs: at('2026-01-01T00:00:01.420Z'), changed: true },
      { cycle: 7, startedMs: at('2026-01-01T00:00:01.720Z'), endedMs: at('2026-01-01T00:00:01.740Z'), changed: false },
    ]);
  });

  it('takes the end of the last changing cycle after the publish (a retry after a failed one included)', () => {
    expect(lastChangeAppliedMs(forwarder, publish)).toBe(420);
    const restarted: CycleEnd[] = [...forwarder, { cycle: 8, startedMs: publish + 900, endedMs: publish + 1100, changed: true }];
    expect(lastChangeAppliedMs(restarted, publish)).toBe(1100);
  });

  it('does not count a cycle that started before the publish, even if it ended after it', () => {
    expect(lastChangeAppliedMs([{ cycle: 1, startedMs: publish - 10, endedMs: publish + 50, changed: true }], publish)).toBeUndefined();
  });

  it('is settled only after the gateway applied, the forwarder had a cycle with nothing to do after its last change, and the quiet time passed', () => {
    const gateway: CycleEnd[] = [{ cycle: 3, startedMs: publish + 30, endedMs: publish + 130, changed: true }];
    expect(settled(forwarder, gateway, publish, publish + 420 + 999, 1000)).toBe(false);
    expect(settled(forwarder, gateway, publish, publish + 420 + 1000, 1000)).toBe(true);
    expect(settled(forwarder, [], publish, publish + 5000, 1000)).toBe(false);
    const notInSync = forwarder.filter((end) => end.cycle !== 7);
    expect(settled(notInSync, gateway, publish, publish + 5000, 1000)).toBe(false);
  });
});
