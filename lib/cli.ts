import { CommanderError, type Command } from 'commander';
import { CommandError, ConfigError, errorMessage } from './errors.js';

/**
 * What every bin/ entry point does: parse, run, and turn an error into one clear message on
 * stderr and an exit code (2 for bad input, 1 for anything else).
 */
export async function runCli(program: Command, argv: readonly string[] = process.argv): Promise<void> {
  program.exitOverride();
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has printed its own message (or the help) already.
      process.exitCode = error.exitCode;
      return;
    }
    const message = error instanceof CommandError ? error.message : errorMessage(error);
    process.stderr.write(`${program.name()}: ${message}\n`);
    process.exitCode = error instanceof ConfigError ? 2 : 1;
  }
}

/** The error for a required setting that was given neither by flag nor by environment variable. */
export function missingSetting(variable: string, flag: string): ConfigError {
  return new ConfigError('environment', variable, `${variable} is required to be passed as an environment variable (or ${flag})`);
}

/** A required setting (flag or environment variable), trimmed, or the ConfigError naming it. */
export function requiredSetting(value: string | undefined, variable: string, flag: string): string {
  if (value === undefined || value.trim() === '') throw missingSetting(variable, flag);
  return value.trim();
}

/** Parses a positive number of seconds from a flag or an environment variable. */
export function parseSeconds(value: string, variable: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new ConfigError('environment', variable, `must be a positive number of seconds, not "${value}"`);
  return seconds;
}

/** `on` or `off` (also yes/no, true/false, 1/0) from a flag or an environment variable. */
export function onOff(value: string, variable: string): boolean {
  const word = value.trim().toLowerCase();
  if (['on', 'yes', 'true', '1'].includes(word)) return true;
  if (['off', 'no', 'false', '0'].includes(word)) return false;
  throw new ConfigError('environment', variable, `must be on or off, not "${value}"`);
}
