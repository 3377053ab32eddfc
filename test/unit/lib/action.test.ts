import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyActions, type Action } from '../../../lib/action.js';
import { createLogger } from '../../../lib/log.js';

/** applyActions' parallel groups, with real processes that wait on each other's marker files. */

const log = createLogger('test', { sink: { write: () => undefined }, level: 'error', color: false });
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * An action that marks its start, waits until the markers `waitFor` exist (failing after 10 s, so
 * that a deadlock shows as a failure), requires the markers `requires` at its start, and marks its end.
 */
function step(dir: string, name: string, options: { parallel?: boolean | string; waitFor?: string[]; requires?: string[] }): Action {
  const script = `
const fs = require('node:fs'), path = require('node:path');
const dir = ${JSON.stringify(dir)};
const mark = (what) => fs.writeFileSync(path.join(dir, what), '');
for (const file of ${JSON.stringify(options.requires ?? [])}) if (!fs.existsSync(path.join(dir, file))) { console.error('started before ' + file); process.exit(1); }
mark(${JSON.stringify(`${name}.start`)});
const deadline = Date.now() + 10000;
const wait = () => {
  if (${JSON.stringify(options.waitFor ?? [])}.every((file) => fs.existsSync(path.join(dir, file)))) { mark(${JSON.stringify(`${name}.end`)}); return; }
  if (Date.now() > deadline) { console.error('waited in vain'); process.exit(1); }
  setTimeout(wait, 5);
};
wait();`;
  return { reason: name, argv: [process.execPath, '-e', script], scope: name, parallel: options.parallel };
}

describe('applyActions', () => {
  it('runs neighbouring actions of one parallel group together, and the next group only after them', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-ext-action-'));
    dirs.push(dir);
    const failures = await applyActions(
      [
        // a1 and a2 each wait for the other's start: they finish only if they run together.
        step(dir, 'a1', { parallel: 'a', waitFor: ['a2.start'] }),
        step(dir, 'a2', { parallel: 'a', waitFor: ['a1.start'] }),
        // b1 must start after both ended, though it is parallel too.
        step(dir, 'b1', { parallel: 'b', requires: ['a1.end', 'a2.end'] }),
      ],
      { log, policy: 'continue' },
    );
    expect(failures.map((failure) => `${failure.action.reason}: ${String(failure.error)}`)).toEqual([]);
  });
});

describe('applyActions: retry', () => {
  /** An action that counts its runs in a file and fails (after `failAfterMs`) while it has run at most `failures` times. */
  function flaky(dir: string, failures: number, failAfterMs = 0): Action {
    const count = path.join(dir, 'runs');
    const script = `
const fs = require('node:fs');
const runs = (fs.existsSync(${JSON.stringify(count)}) ? Number(fs.readFileSync(${JSON.stringify(count)}, 'utf8')) : 0) + 1;
fs.writeFileSync(${JSON.stringify(count)}, String(runs));
if (runs <= ${failures}) setTimeout(() => { console.error('refused'); process.exit(255); }, ${failAfterMs});`;
    return { reason: 'start tunnel', argv: [process.execPath, '-e', script], retry: { attempts: 2, delayMs: 10, ifFailedWithinMs: 2000 } };
  }
  const runs = (dir: string): number => Number(fs.readFileSync(path.join(dir, 'runs'), 'utf8'));
  const temp = (): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-ext-action-'));
    dirs.push(dir);
    return dir;
  };

  it('runs a command that failed at once again, up to `attempts` more times, and succeeds if one of them does', async () => {
    const dir = temp();
    const failures = await applyActions([flaky(dir, 2)], { log, policy: 'continue' });
    expect(failures).toEqual([]);
    expect(runs(dir)).toBe(3);
  });

  it('reports the failure after the last attempt', async () => {
    const dir = temp();
    const failures = await applyActions([flaky(dir, 5)], { log, policy: 'continue' });
    expect(failures.map((failure) => failure.action.reason)).toEqual(['start tunnel']);
    expect(runs(dir)).toBe(3);
  });

  it('does not run again a command that took longer than ifFailedWithinMs to fail, nor one without retry', async () => {
    const slow = temp();
    const action = flaky(slow, 5, 300);
    const failures = await applyActions([{ ...action, retry: { attempts: 2, delayMs: 10, ifFailedWithinMs: 100 } }], { log, policy: 'continue' });
    expect(failures).toHaveLength(1);
    expect(runs(slow)).toBe(1);
    const plain = temp();
    expect(await applyActions([{ ...flaky(plain, 5), retry: undefined }], { log, policy: 'continue' })).toHaveLength(1);
    expect(runs(plain)).toBe(1);
  });

  it('runs again a command that took longer to fail when its error matches ifErrorMatches, and not when it does not', async () => {
    const refused = temp();
    const failures = await applyActions([{ ...flaky(refused, 1, 300), retry: { attempts: 2, delayMs: 10, ifFailedWithinMs: 100, ifErrorMatches: /refused/ } }], { log, policy: 'continue' });
    expect(failures).toEqual([]);
    expect(runs(refused)).toBe(2);
    const other = temp();
    expect(await applyActions([{ ...flaky(other, 5, 300), retry: { attempts: 2, delayMs: 10, ifFailedWithinMs: 100, ifErrorMatches: /timed out/ } }], { log, policy: 'continue' })).toHaveLength(1);
    expect(runs(other)).toBe(1);
  });
});
