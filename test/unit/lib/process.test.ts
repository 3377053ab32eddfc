import { describe, expect, it } from 'vitest';
import { CommandError } from '../../../lib/errors.js';
import { parseRunningPids, psMatchedNothing } from '../../../lib/process.js';

describe('psMatchedNothing', () => {
  const psError = (fields: { exitCode?: number; stdout?: string; stderr?: string; signal?: string }): CommandError =>
    new CommandError({ argv: ['ps', '-C', 'ssh', '-o', 'pid,args', '--no-headers'], ...fields });

  it('is true for exit 1 with nothing printed (procps: no process matched)', () => {
    expect(psMatchedNothing(psError({ exitCode: 1, stdout: '', stderr: '' }))).toBe(true);
    expect(psMatchedNothing(psError({ exitCode: 1, stdout: '\n', stderr: ' \n' }))).toBe(true);
  });

  it.each([
    ['exit 1 with a message', { exitCode: 1, stderr: 'Error: /proc must be mounted\n' }],
    ['exit 1 with output', { exitCode: 1, stdout: '  17 ssh -f -N -R a:1:b:2 h\n' }],
    ['another exit code', { exitCode: 2 }],
    ['a signal', { signal: 'SIGKILL' }],
  ])('is false for %s: ps failed, which says nothing about what runs', (_title, fields) => {
    expect(psMatchedNothing(psError(fields))).toBe(false);
  });

  it('is false for anything but a failed command', () => {
    expect(psMatchedNothing(new Error('spawn ps ENOENT'))).toBe(false);
  });
});

describe('parseRunningPids', () => {
  it('lists the pids whose state is not a zombie', () => {
    expect(parseRunningPids('   17 S\n   18 Z\n 1003 Ss\n\n')).toEqual([17, 1003]);
  });
});
