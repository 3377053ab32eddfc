import type { Command } from 'commander';
import { createProgram, exitWith } from '../lib/cli.js';
import { addSettings } from '../lib/settings.js';
import { runGateway } from './run.js';
import { GATEWAY_KEYS, GATEWAY_SETTINGS, PLACEMENT_KEYS, resolveGatewaySettings, resolvePlacement } from './settings.js';
import { showGatewayStatus } from './status.js';
import { teardownGateway } from './teardown.js';

/** The `gateway` program: `run` (the default), `status` and `teardown`; commander -> settings -> the command's work. */

const IPS_CONF = ['<IPS_CONF>', 'file with one IPv4 address per line (# comments allowed)'] as const;

function addRunCommand(program: Command): void {
  const command = program
    .command('run', { isDefault: true })
    .description('(default command) set up every IP and keep it so: reconcile every INTERVAL and soon after IPS_CONF or the rules file changes')
    .argument(...IPS_CONF)
    .option('--once', 'run one cycle and exit');
  addSettings(command, GATEWAY_SETTINGS, GATEWAY_KEYS).action(async (ipsConf: string, parsed: Record<string, unknown>) => {
    await runGateway(resolveGatewaySettings(ipsConf, parsed), parsed.once === true);
  });
}

function addStatusCommand(program: Command): void {
  const command = program
    .command('status')
    .description('show per IP what is set up and what is wrong (exit 1 when anything is not applied, 2 when an input file is invalid)')
    .argument(...IPS_CONF);
  addSettings(command, GATEWAY_SETTINGS, GATEWAY_KEYS).action(async (ipsConf: string, parsed: Record<string, unknown>) => {
    exitWith(await showGatewayStatus(resolveGatewaySettings(ipsConf, parsed), process.stdout));
  });
}

function addTeardownCommand(program: Command): void {
  const command = program.command('teardown').description('remove everything set up for each IP of IPS_CONF (idempotent)').argument(...IPS_CONF);
  addSettings(command, GATEWAY_SETTINGS, PLACEMENT_KEYS).action(async (ipsConf: string, parsed: Record<string, unknown>) => {
    await teardownGateway(ipsConf, resolvePlacement(parsed));
  });
}

export function buildGatewayProgram(): Command {
  const program = createProgram(
    'gateway',
    'Gives each IP of IPS_CONF a network namespace with a macvlan device, an sshd for the tunnels and the nat rules of the rules file',
  ).usage('[run] [--once] [options] IPS_CONF | status [options] IPS_CONF | teardown [options] IPS_CONF');
  addRunCommand(program);
  addStatusCommand(program);
  addTeardownCommand(program);
  return program;
}
