import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.js';
import { ROOT, tempDir } from '../helpers/cli.js';

/** The bin/ programs in a checkout that was never built: one line saying what to run, not a stack trace. */

let dir: { dir: string; remove: () => void } | undefined;
afterEach(() => dir?.remove());

describe.each(['controller', 'gateway', 'forwarder'])('bin/%s without dist/', (name) => {
  it('prints one line saying to run npm ci and exits 1', async () => {
    dir = tempDir();
    fs.mkdirSync(path.join(dir.dir, 'bin'));
    for (const file of [name, 'built.mjs']) fs.copyFileSync(path.join(ROOT, 'bin', file), path.join(dir.dir, 'bin', file));
    const result = await run(process.execPath, [path.join(dir.dir, 'bin', name), '--help'], { reject: false, timeoutMs: 20_000 });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toEqual([
      `bin/${name}: it is not built (${path.join(dir.dir, 'dist', 'bin', `${name}.js`)} is missing): run \`npm ci\` (or \`npm run build\`) first`,
    ]);
  });
});
