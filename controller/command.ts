import { Command, Option } from 'commander';
import { createLogger } from '../lib/log.js';
import { genruleCommand, snapshotCommand, validateCommand } from './genrule-command.js';
import { runController } from './run.js';
import { addObjectOptions, addRunOptions, addStatusOptions, parseGatewayHosts, resolveControllerSettings, resolveObjectSettings, type RawOptions } from './settings.js';
import { runStatus } from './status.js';
import { runTeardown } from './teardown.js';

/**
 * The bin/controller program. Each subcommand is one self-contained `add...` block below.
 */

export const DEFAULT_FORWARDER_NAMESPACE = 'external-services';

function namespaceOption(): Option {
  return new Option('--namespace <name>', 'namespace of the forwarder pods').env('FORWARDER_NAMESPACE').default(DEFAULT_FORWARDER_NAMESPACE);
}

function addGenruleCommand(program: Command): void {
  program
    .command('genrule')
    .description('print the rules YAML for the ExternalServices of CONF_DIR on stdout (needs only kubectl; invalid files are reported on stderr and skipped)')
    .argument('<CONF_DIR>', 'directory of ExternalService YAML files')
    .addOption(namespaceOption())
    .addOption(new Option('--snapshot <file>', 'generate from a saved cluster snapshot (see `snapshot`) instead of reading the cluster').env('GENRULE_SNAPSHOT'))
    .action(async (confDir: string, options: { namespace: string; snapshot?: string }) => {
      await genruleCommand(confDir, options, createLogger('controller/genrule'), process.stdout);
    });
}

function addValidateCommand(program: Command): void {
  program
    .command('validate')
    .description('check every ExternalService file of CONF_DIR and report every problem; exit 1 if any file is invalid')
    .argument('<CONF_DIR>', 'directory of ExternalService YAML files')
    .addOption(namespaceOption())
    .addOption(new Option('--snapshot <file>', 'also report what this saved cluster snapshot lacks for the rules (warnings only)').env('GENRULE_SNAPSHOT'))
    .action(async (confDir: string, options: { namespace: string; snapshot?: string }) => {
      const valid = await validateCommand(confDir, options, createLogger('controller/validate'));
      if (!valid) process.exitCode = 1;
    });
}

function addSnapshotCommand(program: Command): void {
  program
    .command('snapshot')
    .description('read the cluster once (forwarder pods, services, endpoints) and save it as JSON for `genrule --snapshot`')
    .addOption(namespaceOption())
    .addOption(new Option('-o, --output <file>', 'write to this file (atomically) instead of stdout'))
    .action(async (options: { namespace: string; output?: string }) => {
      await snapshotCommand(options, createLogger('controller/snapshot'), process.stdout);
    });
}

function addRunCommand(program: Command): void {
  program.usage('[run] [--once] [options] <CONF_DIR>  |  controller <command> [options]');
  const command = program
    .command('run', { isDefault: true })
    .description('(default command) reconcile every INTERVAL and at once when CONF_DIR changes: forwarder pods and services, the rules ConfigMap, the rules on the gateway node(s)')
    .argument('<CONF_DIR>', 'directory of ExternalService YAML files')
    .option('--once', 'run one cycle and exit (0 on success, 1 on failure, 2 when a conf file is invalid)');
  addRunOptions(command).action(async (confDir: string, options: RawOptions & { once?: boolean }) => {
    const settings = resolveControllerSettings(confDir, options);
    await runController(settings, { once: options.once === true, log: createLogger('controller') });
  });
}

function addTeardownCommand(program: Command): void {
  const command = program
    .command('teardown')
    .description('delete the forwarder pods and services (of CONF_DIR and any left over), the ConfigMap, the secret and the namespace')
    .argument('<CONF_DIR>', 'directory of ExternalService YAML files');
  addObjectOptions(command).action(async (confDir: string, options: RawOptions) => {
    await runTeardown(confDir, resolveObjectSettings(options), createLogger('controller/teardown'));
  });
}

function addStatusCommand(program: Command): void {
  const command = program
    .command('status')
    .description('show what is applied and what is wrong (invalid files, missing objects, gateways without the current rules); exit 1 if anything is')
    .argument('<CONF_DIR>', 'directory of ExternalService YAML files');
  addStatusOptions(command).action(async (confDir: string, options: RawOptions) => {
    const hosts = options.gateway === undefined || options.gateway.trim() === '' ? undefined : parseGatewayHosts(options.gateway);
    const healthy = await runStatus(confDir, resolveObjectSettings(options), hosts, process.stdout);
    if (!healthy) process.exitCode = 1;
  });
}

export function createControllerProgram(): Command {
  const program = new Command('controller').description(
    'k8s-ext-connector controller: runs forwarder pods and publishes the tunnel and iptables rules for the ExternalServices of CONF_DIR',
  );
  addGenruleCommand(program);
  addValidateCommand(program);
  addSnapshotCommand(program);
  addRunCommand(program);
  addTeardownCommand(program);
  addStatusCommand(program);
  return program;
}
