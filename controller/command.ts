import { Option, type Command } from 'commander';
import { buildProgram, EXIT, exitWith } from '../lib/cli.js';
import { createLogger } from '../lib/log.js';
import { readSettings } from '../lib/settings.js';
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
const OFFLINE_KEYS = ['namespace', 'snapshot'] as const;

export function buildControllerProgram(): Command {
  const table = CONTROLLER_SETTINGS;
  return buildProgram({ name: 'controller', description: 'k8s-ext-connector controller: runs forwarder pods and publishes the tunnel and iptables rules for the ExternalServices of CONF_DIR', usage: '[run] [--once] [options] CONF_DIR | status [options] CONF_DIR | teardown [options] CONF_DIR | genrule | validate | snapshot' }, table, [
    {
      name: 'run', argument: CONF_DIR, keys: RUN_KEYS,
      description: 'reconcile every INTERVAL and at once when CONF_DIR changes: forwarder pods, services, ConfigMaps and their access, the rules on the gateway node(s)',
      action: (confDir, parsed) => runController(resolveControllerSettings(confDir, parsed), { once: parsed.once === true, log: createLogger('controller') }),
    },
    {
      name: 'status', argument: CONF_DIR, keys: STATUS_KEYS,
      description: 'show what is applied and what is wrong (exit 1 when anything is not applied, 2 when a conf file is invalid)',
      action: async (confDir, parsed) => {
        const { gatewayToReport, image } = readSettings(table, ['gatewayToReport', 'image'], parsed);
        exitWith(await showControllerStatus(confDir, { ...resolveObjectSettings(parsed), image }, gatewayToReport, process.stdout));
      },
    },
    {
      name: 'teardown', argument: CONF_DIR, keys: OBJECT_KEYS,
      description: 'delete the forwarder pods, services, ConfigMaps, ServiceAccounts, Roles and RoleBindings (of CONF_DIR and any left over), the state ConfigMap, the secret and the namespace',
      action: (confDir, parsed) => teardownController(confDir, resolveObjectSettings(parsed), createLogger('controller/teardown')),
    },
    {
      name: 'genrule', argument: CONF_DIR, keys: OFFLINE_KEYS,
      description: 'print the rules YAML for the ExternalServices of CONF_DIR on stdout (needs only kubectl; invalid files are reported on stderr and skipped)',
      action: (confDir, parsed) => genruleCommand(confDir, readSettings(table, OFFLINE_KEYS, parsed), createLogger('controller/genrule'), process.stdout),
    },
    {
      name: 'validate', argument: CONF_DIR, keys: OFFLINE_KEYS,
      description: 'check every ExternalService file of CONF_DIR and report every problem; exit 2 if any file is invalid',
      extraOptions: [new Option('--strict', 'unknown fields and skipped entries of CONF_DIR are errors too (else warnings)')],
      action: async (confDir, parsed) => {
        const options = { ...readSettings(table, OFFLINE_KEYS, parsed), strict: parsed.strict === true };
        if (!(await validateCommand(confDir, options, createLogger('controller/validate')))) exitWith(EXIT.badInput);
      },
    },
    {
      name: 'snapshot', keys: ['namespace'],
      description: 'read the cluster once (forwarder pods, services, EndpointSlices) and save it as JSON for `genrule --snapshot`',
      extraOptions: [new Option('-o, --output <file>', 'write to this file (atomically) instead of stdout')],
      action: async (_none, parsed) => {
        const { namespace } = readSettings(table, ['namespace'], parsed);
        await snapshotCommand({ namespace, output: typeof parsed.output === 'string' ? parsed.output : undefined }, createLogger('controller/snapshot'), process.stdout);
      },
    },
  ]);
}
