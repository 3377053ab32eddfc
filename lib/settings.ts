import { Option, type Command } from 'commander';
import { ConfigError } from './errors.js';

/**
 * The one way the three programs take their settings: a table of settings, each with its flag,
 * its environment variable, its default, its parser and its help. commander reads the flag, else
 * the environment variable, else the default; the parser then checks the text and turns it into
 * the value the program uses, or throws a ConfigError naming the variable (exit code 2).
 */

export interface Setting<T> {
  /** commander's flag syntax, e.g. '--interval <seconds>'. */
  flag: string;
  env: string;
  help: string;
  /** The default as text, shown in --help and parsed like a given value. */
  default?: string | undefined;
  /** The value from the flag, the environment variable or the default (undefined when none), checked. */
  resolve(text: string | undefined): T;
}

export type SettingTable = Record<string, Setting<unknown>>;
export type SettingValues<T extends SettingTable, K extends keyof T = keyof T> = { [P in K]: ReturnType<T[P]['resolve']> };

/** Turns a given text into a value; throws a ConfigError (see `invalid`) when it is not one. */
export type Parse<T> = (text: string, env: string) => T;

interface Spec<T> {
  flag: string;
  env: string;
  help: string;
  parse: Parse<T>;
}

/** A setting with a default: always has a value. */
export function withDefault<T>(spec: Spec<T> & { default: string }): Setting<T> {
  return { ...spec, resolve: (text) => spec.parse(text ?? spec.default, spec.env) };
}

/** A setting without a default: undefined when given neither by flag nor by environment variable (or given empty). */
export function optional<T>(spec: Spec<T>): Setting<T | undefined> {
  return { ...spec, resolve: (text) => (text === undefined || text.trim() === '' ? undefined : spec.parse(text.trim(), spec.env)) };
}

/** A setting the program cannot run without. */
export function required<T>(spec: Spec<T>): Setting<T> {
  return {
    ...spec,
    help: `${spec.help} (required)`,
    resolve: (text) => {
      if (text === undefined || text.trim() === '') throw missingSetting(spec.env, flagName(spec.flag));
      return spec.parse(text.trim(), spec.env);
    },
  };
}

/** The error for a required setting that was given neither by flag nor by environment variable. */
export function missingSetting(env: string, flag: string): ConfigError {
  return new ConfigError('settings', env, `${env} is required to be passed as an environment variable (or ${flag})`);
}

/** A ConfigError naming the setting's variable. */
export function invalid(env: string, reason: string): ConfigError {
  return new ConfigError('settings', env, reason);
}

function flagName(flag: string): string {
  return flag.split(/[\s,]/)[0] ?? flag;
}

function optionOf(setting: Setting<unknown>): Option {
  const option = new Option(setting.flag, setting.help).env(setting.env);
  return setting.default === undefined ? option : option.default(setting.default);
}

/** Adds the flags of these settings (each with its variable and default in --help) to a command. */
export function addSettings<T extends SettingTable>(command: Command, table: T, keys: readonly (keyof T)[]): Command {
  for (const key of keys) command.addOption(optionOf(table[key] as Setting<unknown>));
  return command;
}

/** Reads these settings from what commander parsed; throws the first ConfigError. */
export function readSettings<T extends SettingTable, K extends keyof T>(table: T, keys: readonly K[], parsed: Record<string, unknown>): SettingValues<T, K> {
  const values: Partial<Record<K, unknown>> = {};
  for (const key of keys) {
    const setting = table[key] as Setting<unknown>;
    const raw = parsed[optionOf(setting).attributeName()];
    values[key] = setting.resolve(typeof raw === 'string' ? raw : undefined);
  }
  return values as SettingValues<T, K>;
}

// ---------------------------------------------------------------------------------------------
// Parsers

export const text: Parse<string> = (value) => value;

/** Text that matches `pattern`, else an error saying what it must be. */
export function matching(pattern: RegExp, what: string): Parse<string> {
  return (value, env) => {
    if (!pattern.test(value)) throw invalid(env, `${JSON.stringify(value)} is not ${what}`);
    return value;
  };
}

export function oneOf<const T extends string>(choices: readonly T[]): Parse<T> {
  return (value, env) => {
    if (!(choices as readonly string[]).includes(value)) throw invalid(env, `must be ${choices.join(', ')}, not ${JSON.stringify(value)}`);
    return value as T;
  };
}

/** `on` or `off` (also yes/no, true/false, 1/0). */
export const onOff: Parse<boolean> = (value, env) => {
  const word = value.trim().toLowerCase();
  if (['on', 'yes', 'true', '1'].includes(word)) return true;
  if (['off', 'no', 'false', '0'].includes(word)) return false;
  throw invalid(env, `must be on or off, not "${value}"`);
};

/**
 * Durations are bounded: Node's timers fire at once for delays above 2^31-1 ms (about 24.8
 * days) and treat delays below 1 ms as 1 ms, so a value outside these bounds would silently do
 * something else than asked.
 */
export const DURATION_BOUNDS = { minSeconds: 0.1, maxSeconds: 24 * 60 * 60 } as const;

/** A number of seconds within DURATION_BOUNDS, as milliseconds. */
export const seconds: Parse<number> = (value, env) => {
  const { minSeconds, maxSeconds } = DURATION_BOUNDS;
  const number = /^\s*[0-9.eE+-]+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isFinite(number) || number < minSeconds || number > maxSeconds) {
    throw invalid(env, `must be a number of seconds from ${minSeconds} to ${maxSeconds} (24 h), not ${JSON.stringify(value)}`);
  }
  return Math.round(number * 1000);
};

/** The resync interval, the same setting in all three programs. */
export const INTERVAL = withDefault({
  flag: '--interval <seconds>',
  env: 'INTERVAL',
  default: '10',
  help: 'resync interval in seconds (a change to a watched file applies at once)',
  parse: seconds,
});
