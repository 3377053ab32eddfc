import { Command, CommanderError, type Option } from 'commander';
import { addSettings, type SettingTable } from './settings.js';
import { AbortedError } from './action.js';
import { CommandError, ConfigError, errorMessage } from './errors.js';

/**
 * What every bin/ program shares: the program's frame (help, exit codes) and the one place that
 * turns an outcome into an exit code.
 */

/** The exit codes of all three programs. */
export const EXIT = {
  ok: 0,
  /** A step failed, or (status) something is not applied yet; also a second SIGINT/SIGTERM. */
  failed: 1,
  /** Bad input: an invalid file or setting, or a usage error. */
  badInput: 2,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const EXIT_HELP = `
Exit codes: 0 ok; 1 a step failed or (status) something is not applied yet; 2 bad input (an invalid
file or setting) or usage. SIGINT/SIGTERM stop between two steps; a second one ends the program at
once with exit code 1.`;

/**
 * A program with the common frame; its commands are added by the component, after this, so that
 * they inherit exitOverride (commander then throws instead of exiting, and runCli sets the code).
 */
export function createProgram(name: string, description: string, usage: string): Command {
  return new Command(name)
    .description(description)
    .usage(usage)
    .exitOverride()
    .showHelpAfterError()
    .addHelpText('after', `\nWithout a command, run is assumed. \`${name} run --help\` (or status, ...) lists a command's options with their environment variables.\n${EXIT_HELP}`);
}

export interface CommandSpec<T extends SettingTable> {
  /** `run` is the default command and has `--once`. */
  name: string;
  description: string;
  /** The one positional argument, [syntax, help], if the command takes one. */
  argument?: readonly [string, string] | undefined;
  /** The settings of the program's table this command takes. */
  keys: readonly (keyof T)[];
  /** Options that are no setting (no environment variable), e.g. an output file. */
  extraOptions?: readonly Option[];
  /** The work: the positional argument ('' without one) and what commander parsed (read it with readSettings). */
  action: (argument: string, parsed: Record<string, unknown>) => Promise<void>;
}

/**
 * A program the way all three are built: the common frame, and its commands, each with its
 * argument, its settings (from the program's one table) and its action.
 */
export function buildProgram<T extends SettingTable>(frame: { name: string; description: string; usage: string }, table: T, commands: readonly CommandSpec<T>[]): Command {
  const program = createProgram(frame.name, frame.description, frame.usage);
  for (const spec of commands) addCommand(program, table, spec);
  return program;
}

function addCommand<T extends SettingTable>(program: Command, table: T, spec: CommandSpec<T>): Command {
  const isRun = spec.name === 'run';
  const command = program.command(spec.name, { isDefault: isRun }).description(isRun ? `(default command) ${spec.description}` : spec.description);
  if (spec.argument) command.argument(...spec.argument);
  if (isRun) command.option('--once', 'run one cycle and exit');
  addSettings(command, table, spec.keys);
  for (const option of spec.extraOptions ?? []) command.addOption(option);
  // commander passes the positional argument (when there is one), then the parsed options.
  command.action(async (...args: unknown[]) => {
    const parsed = args[spec.argument ? 1 : 0] as Record<string, unknown>;
    await spec.action(spec.argument ? String(args[0]) : '', parsed);
  });
  return command;
}

/** Sets the exit code of a command that finished without an error (e.g. status). */
export function exitWith(code: ExitCode): void {
  process.exitCode = code;
}

/** The exit code for an error that ended a command. */
export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.badInput;
  return error instanceof ConfigError ? EXIT.badInput : EXIT.failed;
}

/**
 * Parses the command line, runs the command, and turns an error into one clear message on
 * stderr and its exit code.
 */
export async function runCli(program: Command, argv: readonly string[] = process.argv): Promise<void> {
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    process.exitCode = exitCodeFor(error);
    // commander has printed its own message (or the help) already.
    if (error instanceof CommanderError) return;
    const message = error instanceof CommandError || error instanceof AbortedError ? error.message : errorMessage(error);
    process.stderr.write(`${program.name()}: ${message}\n`);
  }
}
