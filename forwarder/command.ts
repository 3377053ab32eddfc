import type { Command } from 'commander';
import { createProgram, exitWith } from '../lib/cli.js';
import { createLogger } from '../lib/log.js';
import { addSettings } from '../lib/settings.js';
import { runForwarder } from './run.js';
import { FORWARDER_KEYS, FORWARDER_SETTINGS, resolveForwarderSettings } from './settings.js';
import { showForwarderStatus } from './status.js';

/** The `forwarder` program: `run` (the default) and `status`; commander -> settings -> the command's work. */

function addRunCommand(program: Command): void {
  const command = program
    .command('run', { isDefault: true })
    .description('(default command) keep the tunnels and the nat table equal to the data file: reconcile every INTERVAL and as soon as the data file changes')
    .option('--once', 'run one cycle and exit');
  addSettings(command, FORWARDER_SETTINGS, FORWARDER_KEYS).action(async (parsed: Record<string, unknown>) => {
    await runForwarder(resolveForwarderSettings(parsed), parsed.once === true, createLogger('forwarder'));
  });
}

function addStatusCommand(program: Command): void {
  const command = program
    .command('status')
    .description('show the running tunnels and nat rules next to the desired ones (exit 1 when they differ, 2 when the data file is unusable)');
  addSettings(command, FORWARDER_SETTINGS, FORWARDER_KEYS).action(async (parsed: Record<string, unknown>) => {
    exitWith(await showForwarderStatus(resolveForwarderSettings(parsed), process.stdout));
  });
}

export function buildForwarderProgram(): Command {
  const program = createProgram(
    'forwarder',
    'Keeps the ssh tunnels and the nat table of this pod equal to forwarder.<EXTERNAL_SERVICE_NAME> of the data file',
  ).usage('[run] [--once] [options] | status [options]');
  addRunCommand(program);
  addStatusCommand(program);
  return program;
}
