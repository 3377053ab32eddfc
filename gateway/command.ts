import { Command, Option } from 'commander';
import { GATEWAY_CIPHERS } from '../lib/ciphers.js';
import { gatewayOptions, placementOptions, type RawOptions } from './options.js';
import { runGateway } from './run.js';
import { statusGateway } from './status.js';
import { teardownGateway } from './teardown.js';

/** The `gateway` program: commander options (each with its environment variable) -> typed options -> action. */

function placementFlags(command: Command): Command {
  return command
    .addOption(new Option('--netns-prefix <prefix>', "name prefix of each IP's network namespace (ns<hex>)").env('NETNS_PREFIX').default('ns'))
    .addOption(new Option('--run-dir <dir>', 'directory of the sshd pid files (sshd-<hex>.pid) and generated configs').env('RUN_DIR').default('/run'));
}

function setupFlags(command: Command): Command {
  return placementFlags(command)
    .addOption(new Option('--nic <device>', 'host network device the macvlan devices hang off (required)').env('NIC'))
    .addOption(new Option('--netmask <bits>', 'prefix length (24) or netmask (255.255.255.0) of the IPs (required)').env('NETMASK'))
    .addOption(new Option('--default-gateway <ip>', 'default route of each IP namespace (required)').env('DEFAULT_GATEWAY'))
    .addOption(new Option('--rules-file <file>', 'rules YAML sent by the controller').env('RULES_FILE').default('/tmp/rules.yaml'))
    .addOption(new Option('--sshd-path <file>', 'sshd program (absolute path)').env('SSHD_PATH').default('/usr/sbin/sshd'))
    .addOption(new Option('--host-key-dir <dir>', 'where ssh_host_*_key files are used from (if none, one is generated into the run dir)').env('HOST_KEY_DIR').default('/etc/ssh'))
    .addOption(new Option('--ssh-user <user>', 'the only user the sshds let in (default: any user with a key; root by key only)').env('SSH_USER'))
    .addOption(new Option('--authorized-keys-file <file>', "AuthorizedKeysFile for the sshds (default: sshd's ~/.ssh/authorized_keys)").env('AUTHORIZED_KEYS_FILE'))
    .addOption(new Option('--ssh-ciphers <list>', 'the only ciphers the sshds accept, separated by commas').env('SSH_CIPHERS').default(GATEWAY_CIPHERS.join(',')));
}

export function buildGatewayProgram(): Command {
  const program = new Command('gateway')
    .description('Gives each IP of IPS_CONF a network namespace with a macvlan device, an sshd for the tunnels and the nat rules of the rules file')
    .usage('[run] [--once] [--rules-file F] [options] IPS_CONF | teardown IPS_CONF | status IPS_CONF')
    .addHelpText('after', '\nWithout a command, run is assumed. `gateway run --help` lists its options and their environment variables.')
    .showHelpAfterError();

  setupFlags(
    program
      .command('run', { isDefault: true })
      .description('set up every IP and keep it so: reconcile every interval and soon after IPS_CONF or the rules file changes')
      .argument('<IPS_CONF>', 'file with one IPv4 address per line (# comments allowed)')
      .option('--once', 'run one cycle and exit (non-zero on failure)')
      .addOption(new Option('--interval <seconds>', 'resync interval').env('INTERVAL').default('10')),
  ).action(async (ipsConf: string, raw: RawOptions & { once?: boolean }) => {
    await runGateway(gatewayOptions(ipsConf, raw), raw.once === true);
  });

  placementFlags(
    program
      .command('teardown')
      .description('remove everything set up for each IP of IPS_CONF (idempotent)')
      .argument('<IPS_CONF>', 'file with one IPv4 address per line'),
  ).action(async (ipsConf: string, raw: Pick<RawOptions, 'netnsPrefix' | 'runDir'>) => {
    await teardownGateway(ipsConf, placementOptions(raw));
  });

  setupFlags(
    program
      .command('status')
      .description('show per IP what is set up and what is wrong (exit 1 when anything is wrong)')
      .argument('<IPS_CONF>', 'file with one IPv4 address per line'),
  ).action(async (ipsConf: string, raw: RawOptions) => {
    const ok = await statusGateway(gatewayOptions(ipsConf, raw));
    if (!ok) process.exitCode = 1;
  });

  return program;
}
