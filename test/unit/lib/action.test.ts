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
