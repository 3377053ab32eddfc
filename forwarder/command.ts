import type { Command } from 'commander';
import { addCommand, createProgram, exitWith } from '../lib/cli.js';
import { createLogger } from '../lib/log.js';
import { runForwarder } from './run.js';
import { FORWARDER_KEYS, FORWARDER_SETTINGS, resolveForwarderSettings } from './settings.js';
import { showForwarderStatus } from './status.js';

/** The `forwarder` program: `run` (the default) and `status`. */

export function buildForwarderProgram(): Command {
  const program = createProgram(
    'forwarder',
    'Keeps the ssh tunnels and the nat table of this pod equal to forwarder.<EXTERNAL_SERVICE_NAME> of the data file',
  ).usage('[run] [--once] [options] | status [options]');
  const table = FORWARDER_SETTINGS;
  addCommand(program, {
    name: 'run',
    description: 'keep the tunnels and the nat table equal to the data file: reconcile every INTERVAL and as soon as the data file changes',
    table,
    keys: FORWARDER_KEYS,
    action: (_none, parsed) => runForwarder(resolveForwarderSettings(parsed), parsed.once === true, createLogger('forwarder')),
  });
  addCommand(program, {
    name: 'status',
    description: 'show the running tunnels and nat rules next to the desired ones (exit 1 when they differ, 2 when the data file is unusable)',
    table,
    keys: FORWARDER_KEYS,
    action: async (_none, parsed) => exitWith(await showForwarderStatus(resolveForwarderSettings(parsed), process.stdout)),
  });
  return program;
}
