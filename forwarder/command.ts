import type { Command } from 'commander';
import { buildProgram, exitWith } from '../lib/cli.js';
import { createLogger } from '../lib/log.js';
import { runForwarder } from './run.js';
import { FORWARDER_KEYS, FORWARDER_SETTINGS, resolveForwarderSettings } from './settings.js';
import { showForwarderStatus } from './status.js';

/** The `forwarder` program: `run` (the default) and `status`. */

export function buildForwarderProgram(): Command {
  return buildProgram({ name: 'forwarder', description: 'Keeps the ssh tunnels and the nat table of this pod equal to forwarder.<EXTERNAL_SERVICE_NAME> of the data file', usage: '[run] [--once] [options] | status [options]' }, FORWARDER_SETTINGS, [
    {
      name: 'run', keys: FORWARDER_KEYS,
      description: 'keep the tunnels and the nat table equal to the data file: reconcile every INTERVAL and as soon as the data file changes',
      action: (_none, parsed) => runForwarder(resolveForwarderSettings(parsed), parsed.once === true, createLogger('forwarder')),
    },
    {
      name: 'status', keys: FORWARDER_KEYS,
      description: 'show the running tunnels and nat rules next to the desired ones (exit 1 when they differ, 2 when the data file is unusable)',
      action: async (_none, parsed) => exitWith(await showForwarderStatus(resolveForwarderSettings(parsed), process.stdout)),
    },
  ]);
}
