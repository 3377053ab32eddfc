import { Command, Option } from 'commander';
import { createLogger } from '../lib/log.js';
import { genruleCommand, snapshotCommand, validateCommand } from './genrule-command.js';

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

export function createControllerProgram(): Command {
  const program = new Command('controller').description(
    'k8s-ext-connector controller: runs forwarder pods and publishes the tunnel and iptables rules for the ExternalServices of CONF_DIR',
  );
  addGenruleCommand(program);
  addValidateCommand(program);
  addSnapshotCommand(program);
  return program;
}
