import { Option, type Command } from 'commander';
import { createProgram, EXIT, exitWith } from '../lib/cli.js';
import { createLogger } from '../lib/log.js';
import { addSettings, readSettings } from '../lib/settings.js';
import { genruleCommand, snapshotCommand, validateCommand } from './genrule-command.js';
import { runController } from './run.js';
import { CONTROLLER_SETTINGS, OBJECT_KEYS, resolveControllerSettings, resolveObjectSettings, RUN_KEYS, STATUS_KEYS } from './settings.js';
import { showControllerStatus } from './status.js';
import { teardownController } from './teardown.js';

/**
 * The bin/controller program: `run` (the default), `status` and `teardown`, like the other two
 * programs, plus the offline tools `genrule`, `validate` and `snapshot`.
 */

const CONF_DIR = ['<CONF_DIR>', 'directory of ExternalService YAML files'] as const;

function addRunCommand(program: Command): void {
  const command = program
    .command('run', { isDefault: true })
    .description('(default command) reconcile every INTERVAL and at once when CONF_DIR changes: forwarder pods and services, the rules ConfigMap, the rules on the gateway node(s)')
    .argument(...CONF_DIR)
    .option('--once', 'run one cycle and exit');
  addSettings(command, CONTROLLER_SETTINGS, RUN_KEYS).action(async (confDir: string, parsed: Record<string, unknown>) => {
    await runController(resolveControllerSettings(confDir, parsed), { once: parsed.once === true, log: createLogger('controller') });
  });
}

function addStatusCommand(program: Command): void {
  const command = program
    .command('status')
    .description('show what is applied and what is wrong (exit 1 when anything is not applied, 2 when a conf file is invalid)')
    .argument(...CONF_DIR);
  addSettings(command, CONTROLLER_SETTINGS, STATUS_KEYS).action(async (confDir: string, parsed: Record<string, unknown>) => {
    const { gatewayToReport } = readSettings(CONTROLLER_SETTINGS, ['gatewayToReport'], parsed);
    exitWith(await showControllerStatus(confDir, resolveObjectSettings(parsed), gatewayToReport, process.stdout));
  });
}

function addTeardownCommand(program: Command): void {
  const command = program
    .command('teardown')
    .description('delete the forwarder pods and services (of CONF_DIR and any left over), the ConfigMap, the secret and the namespace')
    .argument(...CONF_DIR);
  addSettings(command, CONTROLLER_SETTINGS, OBJECT_KEYS).action(async (confDir: string, parsed: Record<string, unknown>) => {
    await teardownController(confDir, resolveObjectSettings(parsed), createLogger('controller/teardown'));
  });
}

/** genrule and validate: CONF_DIR, the namespace and an optional snapshot file. */
function addOfflineCommand(program: Command, name: string, description: string, action: (confDir: string, source: { namespace: string; snapshot: string | undefined }) => Promise<void>): void {
  const command = program.command(name).description(description).argument(...CONF_DIR);
  addSettings(command, CONTROLLER_SETTINGS, ['namespace', 'snapshot']).action(async (confDir: string, parsed: Record<string, unknown>) => {
    await action(confDir, readSettings(CONTROLLER_SETTINGS, ['namespace', 'snapshot'], parsed));
  });
}

function addSnapshotCommand(program: Command): void {
  const command = program
    .command('snapshot')
    .description('read the cluster once (forwarder pods, services, endpoints) and save it as JSON for `genrule --snapshot`')
    .addOption(new Option('-o, --output <file>', 'write to this file (atomically) instead of stdout'));
  addSettings(command, CONTROLLER_SETTINGS, ['namespace']).action(async (parsed: Record<string, unknown> & { output?: string }) => {
    const { namespace } = readSettings(CONTROLLER_SETTINGS, ['namespace'], parsed);
    await snapshotCommand({ namespace, output: parsed.output }, createLogger('controller/snapshot'), process.stdout);
  });
}

export function buildControllerProgram(): Command {
  const program = createProgram(
    'controller',
    'k8s-ext-connector controller: runs forwarder pods and publishes the tunnel and iptables rules for the ExternalServices of CONF_DIR',
  ).usage('[run] [--once] [options] CONF_DIR | status [options] CONF_DIR | teardown [options] CONF_DIR | genrule | validate | snapshot');
  addRunCommand(program);
  addStatusCommand(program);
  addTeardownCommand(program);
  addOfflineCommand(
    program,
    'genrule',
    'print the rules YAML for the ExternalServices of CONF_DIR on stdout (needs only kubectl; invalid files are reported on stderr and skipped)',
    (confDir, source) => genruleCommand(confDir, source, createLogger('controller/genrule'), process.stdout),
  );
  addOfflineCommand(program, 'validate', 'check every ExternalService file of CONF_DIR and report every problem; exit 2 if any file is invalid', async (confDir, source) => {
    if (!(await validateCommand(confDir, source, createLogger('controller/validate')))) exitWith(EXIT.badInput);
  });
  addSnapshotCommand(program);
  return program;
}
