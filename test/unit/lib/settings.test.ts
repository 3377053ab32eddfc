import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { addSettings, INTERVAL, optional, readSettings, required, seconds, text, withDefault } from '../../../lib/settings.js';

describe('seconds', () => {
  it.each([
    ['10', 10_000],
    ['0.1', 100],
    ['2.5', 2500],
    ['86400', 86_400_000],
    ['1e3', 1_000_000],
  ])('reads %s seconds as %i ms', (value, ms) => {
    expect(seconds(value, 'INTERVAL')).toBe(ms);
  });

  it.each([
    ['3000000', 'above 24 h: a timer of more than 2^31-1 ms would fire at once'],
    ['1e-9', 'below 0.1 s: a timer rounds it up to 1 ms'],
    ['0.05', 'below 0.1 s'],
    ['0', 'zero'],
    ['-5', 'negative'],
    ['Infinity', 'not finite'],
    ['ten', 'not a number'],
    ['', 'empty'],
    ['0x10', 'hexadecimal'],
  ])('rejects %s (%s), naming the variable and the bounds', (value) => {
    expect(() => seconds(value, 'SSH_START_TIMEOUT')).toThrow(ConfigError);
    expect(() => seconds(value, 'SSH_START_TIMEOUT')).toThrow(`SSH_START_TIMEOUT: must be a number of seconds from 0.1 to 86400 (24 h), not ${JSON.stringify(value)}`);
  });
});

describe('a settings table', () => {
  const TABLE = {
    name: required({ flag: '--name <name>', env: 'TEST_NAME', help: 'a name', parse: text }),
    colour: withDefault({ flag: '--colour <colour>', env: 'TEST_COLOUR', default: 'blue', help: 'a colour', parse: text }),
    note: optional({ flag: '--note <text>', env: 'TEST_NOTE', help: 'a note', parse: text }),
    interval: INTERVAL,
  };
  const parse = (argv: string[], env: Record<string, string> = {}): Record<string, unknown> => {
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const command = addSettings(new Command('test').exitOverride(), TABLE, ['name', 'colour', 'note', 'interval']);
      command.parse(['node', 'test', ...argv]);
      return command.opts();
    } finally {
      for (const key of Object.keys(env)) if (saved[key] === undefined) delete process.env[key];
    }
  };

  it('takes the flag first, then the environment variable, then the default', () => {
    expect(readSettings(TABLE, ['name', 'colour', 'note', 'interval'], parse(['--name', 'flag'], { TEST_NAME: 'env', TEST_NOTE: 'from env' }))).toEqual({
      name: 'flag',
      colour: 'blue',
      note: 'from env',
      interval: 10_000,
    });
  });

  it('names the variable and the flag of a missing required setting', () => {
    expect(() => readSettings(TABLE, ['name'], parse([]))).toThrow('TEST_NAME is required to be passed as an environment variable (or --name)');
  });

  it('rejects an interval outside the bounds given by flag or by environment variable', () => {
    expect(() => readSettings(TABLE, ['interval'], parse(['--interval', '3000000']))).toThrow('INTERVAL: must be a number of seconds from 0.1 to 86400');
    expect(() => readSettings(TABLE, ['interval'], parse([], { INTERVAL: '1e-9' }))).toThrow('INTERVAL: must be a number of seconds from 0.1 to 86400');
  });

  it('shows each flag with its variable and default in --help', () => {
    const help = addSettings(new Command('test'), TABLE, ['colour', 'interval']).helpInformation();
    expect(help).toMatch(/--colour <colour>\s+a colour \(default: "blue", env: TEST_COLOUR\)/);
    expect(help).toMatch(/--interval <seconds>\s+resync interval in seconds .*\(default: "10", env: INTERVAL\)/s);
  });
});
