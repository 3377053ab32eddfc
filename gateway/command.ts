import type { Command } from 'commander';
import { buildProgram, exitWith } from '../lib/cli.js';
import { runGateway } from './run.js';
import { GATEWAY_KEYS, GATEWAY_SETTINGS, PLACEMENT_KEYS, resolveGatewaySettings, resolvePlacement } from './settings.js';
import { showGatewayStatus } from './status.js';
import { teardownGateway } from './teardown.js';

/** The `gateway` program: `run` (the default), `status` and `teardown`. */

const IPS_CONF = ['<IPS_CONF>', 'file with one IPv4 address per line (# comments allowed)'] as const;

export function buildGatewayProgram(): Command {
  return buildProgram({ name: 'gateway', description: 'Gives each IP of IPS_CONF a network namespace with a macvlan device, an sshd for the tunnels and the nat rules of the rules file', usage: '[run] [--once] [options] IPS_CONF | status [options] IPS_CONF | teardown [options] IPS_CONF' }, GATEWAY_SETTINGS, [
    {
      name: 'run', argument: IPS_CONF, keys: GATEWAY_KEYS,
      description: 'set up every IP and keep it so: reconcile every INTERVAL and soon after IPS_CONF or the rules file changes',
      action: (ipsConf, parsed) => runGateway(resolveGatewaySettings(ipsConf, parsed), parsed.once === true),
    },
    {
      name: 'status', argument: IPS_CONF, keys: GATEWAY_KEYS,
      description: 'show per IP what is set up and what is wrong (exit 1 when anything is not applied, 2 when an input file is invalid)',
      action: async (ipsConf, parsed) => exitWith(await showGatewayStatus(resolveGatewaySettings(ipsConf, parsed), process.stdout)),
    },
    {
      name: 'teardown', argument: IPS_CONF, keys: PLACEMENT_KEYS,
      description: 'remove everything set up for each IP of IPS_CONF (idempotent)',
      action: (ipsConf, parsed) => teardownGateway(ipsConf, resolvePlacement(parsed)),
    },
  ]);
}
