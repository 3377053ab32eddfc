import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseProcessStat, reloadTookEffectAtMs } from '../../../gateway/observe.js';

/** A /proc/<pid>/stat line whose start time (field 22) is `ticks`; the name holds a space and a parenthesis. */
const stat = (ticks: number): string => `4711 (sshd: root) x) S 1 4711 4711 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 ${ticks} 1000 200 18446744073709551615\n`;

describe('parseProcessStat', () => {
  it('reads the parent, and places the start time by the uptime read at the same moment, to the 10 ms tick', () => {
    // Booted 12,345.67 s before "now"; started 12,000.00 s after boot, so 345.67 s ago.
    expect(parseProcessStat(4711, stat(1_200_000), '12345.67 24000.00\n', 1_800_000_000_000)).toEqual({ pid: 4711, parentPid: 1, startedAtMs: 1_800_000_000_000 - 345_670 });
  });

  it('is undefined for an unreadable stat line or uptime', () => {
    expect(parseProcessStat(4711, '4711 (sshd)', '12345.67 1.00\n', 0)).toBeUndefined();
    expect(parseProcessStat(4711, stat(100), '', 0)).toBeUndefined();
  });
});

describe('reloadTookEffectAtMs', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8x-reload-'));
  const pidFile = path.join(dir, 'sshd.pid');
  afterEach(() => fs.rmSync(pidFile, { force: true }));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('waits for the pid file that sshd writes again once it runs with the new config, and returns when it was written', async () => {
    fs.writeFileSync(pidFile, '4242\n');
    fs.utimesSync(pidFile, new Date(1000), new Date(1000));
    const hupSentAtMs = Date.now();
    const waiting = reloadTookEffectAtMs(pidFile, hupSentAtMs, 10_000);
    let settled = false;
    void waiting.then(() => (settled = true));
    // Still waiting while the pid file is the one from before the SIGHUP.
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);

    fs.writeFileSync(pidFile, '4242\n');
    const writtenAtMs = fs.statSync(pidFile).mtimeMs;
    expect(await waiting).toBe(writtenAtMs);
  });

  it('gives up, with undefined, when sshd does not come back (no pid file)', async () => {
    expect(await reloadTookEffectAtMs(pidFile, Date.now(), 30)).toBeUndefined();
  });

  it('stops waiting when the cycle is aborted', async () => {
    const controller = new AbortController();
    const waiting = reloadTookEffectAtMs(pidFile, Date.now(), 10_000, controller.signal);
    controller.abort();
    await expect(waiting).rejects.toThrow(/abort/i);
  });
});
