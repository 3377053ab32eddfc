import { applyTeardown } from '../lib/action.js';
import { errorMessage } from '../lib/errors.js';
import { loadExternalServices } from '../lib/externalservice.js';
import type { Logger } from '../lib/log.js';
import { abortOnSignals } from '../lib/signals.js';
import { applyControllerActions } from './apply.js';
import { observeNamespace } from './observe.js';
import { changesToActions, planTeardown } from './plan.js';
import type { ObjectSettings } from './settings.js';

/**
 * `controller teardown CONF_DIR` (teardown.sh): deletes the forwarder pods and services the
 * controller labelled, then the forwarders' RoleBindings, Roles, ServiceAccounts and ConfigMaps,
 * the state ConfigMap, the secret and the namespace, each only if it exists
 * and is the controller's (see planTeardown); what it keeps is logged with why. Nothing to delete
 * is a success.
 */
export async function teardownController(confDir: string, settings: ObjectSettings, log: Logger): Promise<void> {
  const aborter = abortOnSignals(log);
  const names: string[] = [];
  try {
    const loaded = await loadExternalServices(confDir);
    names.push(...loaded.services.map((service) => service.name));
    for (const error of loaded.errors) log.warn(`skipping invalid conf file: ${error.message}`);
  } catch (error) {
    log.warn('cannot read the conf directory; deleting what the controller labelled as its own', { error: errorMessage(error) });
  }
  const observed = await observeNamespace(settings, { signal: aborter.signal });
  const { changes, kept } = planTeardown(names, observed, settings);
  for (const reason of kept) log.warn(reason);
  const actions = changesToActions(changes, settings.namespace);
  await applyTeardown(actions, (planned) => applyControllerActions(planned, { log, signal: aborter.signal }), log, { namespace: settings.namespace });
}
