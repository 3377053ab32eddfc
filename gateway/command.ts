import { Option, type Command } from 'commander';
import { buildProgram, exitWith } from '../lib/cli.js';
import { runGateway } from './run.js';
import { GATEWAY_KEYS, GATEWAY_SETTINGS, PLACEMENT_KEYS, resolveGatewaySettings, resolvePlacement } from './settings.js';
import { keepalivedConfigs } from './keepalived-config.js';
import { showGatewayStatus } from './status.js';
import { teardownGateway } from './teardown.js';
import { recordAnnouncement } from './vrrp-state.js';

/** The `gateway` program: `run` (the default), `status` and `teardown`. */

const IPS_CONF = ['<IPS_CONF>', 'file with one IPv4 address per line (# comments allowed)'] as const;

export function buildGatewayProgram(): Command {
  const program = buildProgram({ name: 'gateway', description: 'Gives each IP of IPS_CONF a network namespace with a macvlan device, an sshd for the tunnels and the nat rules of the rules file', usage: '[run] [--once] [options] IPS_CONF | status [--json] [options] IPS_CONF | teardown [options] IPS_CONF | keepalived-config [options] IPS_CONF' }, GATEWAY_SETTINGS, [
    {
      name: 'run', argument: IPS_CONF, keys: GATEWAY_KEYS,
      description: 'set up every IP and keep it so: reconcile every INTERVAL and soon after IPS_CONF or the rules file changes',
      action: (ipsConf, parsed) => runGateway(resolveGatewaySettings(ipsConf, parsed), parsed.once === true),
    },
    {
      name: 'status', argument: IPS_CONF, keys: GATEWAY_KEYS,
      description: 'show per IP what is set up, with failover its VRRP role, and what is wrong (exit 1 when anything is not applied, 2 when an input file is invalid)',
      extraOptions: [new Option('--json', 'print the status as JSON')],
      action: async (ipsConf, parsed) => exitWith(await showGatewayStatus(resolveGatewaySettings(ipsConf, parsed), process.stdout, parsed.json === true ? 'json' : 'text')),
    },
    {
      name: 'teardown', argument: IPS_CONF, keys: PLACEMENT_KEYS,
      description: 'remove everything set up for each IP of IPS_CONF (idempotent)',
      action: (ipsConf, parsed) => teardownGateway(ipsConf, resolvePlacement(parsed)),
    },
    {
      name: 'keepalived-config', argument: IPS_CONF, keys: GATEWAY_KEYS,
      description: 'print the keepalived config of each IP as the gateway writes it with failover (RUN_DIR/keepalived-<hex>.conf); FAILOVER need not be set',
      action: async (ipsConf, parsed) => void process.stdout.write(await keepalivedConfigs(resolveGatewaySettings(ipsConf, { ...parsed, failover: 'on' }))),
    },
  ]);
  // keepalived's notify command: keepalived appends its four words to the ones it was given.
  program
    .command('vrrp-notify')
    .description("keepalived's notify command: records a VRRP transition in STATE_DIR (keepalived appends INSTANCE, the IP, the state and the priority)")
    .argument('<STATE_DIR>', 'where the transitions are recorded (RUN_DIR/vrrp-state)')
    .argument('<words...>', 'INSTANCE, the IP, MASTER|BACKUP|FAULT|STOP|DELETED and the priority')
    .action((stateDir: string, words: string[]) => {
      recordAnnouncement(stateDir, words);
    });
  return program;
}
