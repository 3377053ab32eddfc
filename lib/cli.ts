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

/** A required environment variable, or a ConfigError naming it. */
export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new ConfigError('environment', name, `${name} is required to be passed as an environment variable`);
  }
  return value;
}

/** Parses a positive number of seconds from a flag or an environment variable. */
export function parseSeconds(value: string, name: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new ConfigError('arguments', name, `must be a positive number of seconds, not "${value}"`);
  return seconds;
}
