import type { Action } from '../lib/action.js';
import type { ExternalService } from '../lib/externalservice.js';
import {
  DELIVERED_ANNOTATION,
  forwarderPod,
  forwarderService,
  isManaged,
  LAST_VALID_ANNOTATION,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  namespaceObject,
  parseStringMap,
  rulesConfigMap,
  servicePorts,
  stableJson,
  type KubeObject,
  type PodSettings,
} from './objects.js';
import type { ResolvedConf } from './desired.js';
import type { ObservedCluster, ObservedConfigMap } from './observe.js';
import type { ObjectSettings } from './settings.js';
import type { PodInfo, ServiceInfo } from './snapshot.js';

/**
 * Pure planning: desired state + observed state -> the commands that make them equal, each an
 * argv array (plus stdin). Nothing changed -> no actions.
 */

function kubectlWithObject(verb: 'create' | 'replace', object: KubeObject, reason: string): Action {
  return { reason, argv: ['kubectl', verb, '-f', '-'], input: `${JSON.stringify(object, null, 2)}\n`, scope: objectScope(object.kind, object.metadata.name) };
}

function kubectlDelete(kind: string, name: string, namespace: string | undefined, reason: string, wait: boolean): Action {
  const argv = ['kubectl', 'delete', kind, name];
  if (namespace !== undefined) argv.push('-n', namespace);
  argv.push('--ignore-not-found');
  if (!wait) argv.push('--wait=false');
  return { reason, argv, scope: objectScope(kind, name) };
}

/** Each object is its own scope: a failure on one never holds back another. */
function objectScope(kind: string, name: string): string {
  return `${kind.toLowerCase()}/${name}`;
}

// ---------------------------------------------------------------------------------------------
// Objects: namespace, secret, ConfigMap (created empty when missing), forwarder pods and services

export interface ObjectSettingsForPlan extends PodSettings {
  sshKeyPath: string;
}

export interface DesiredObjects {
  services: readonly Pick<ExternalService, 'name' | 'ports'>[];
  /** False while an invalid conf file without a known valid version might own some of the objects. */
  deleteLeftovers: boolean;
}

export interface ObservedObjects {
  namespaceExists: boolean;
  secretExists: boolean;
  configMapExists: boolean;
  /** Pods of the forwarder namespace. */
  pods: readonly PodInfo[];
  /** Services of any namespace (only the forwarder namespace's are considered). */
  services: readonly ServiceInfo[];
}

export function planObjects(desired: DesiredObjects, observed: ObservedObjects, settings: ObjectSettingsForPlan): Action[] {
  const { namespace } = settings;
  const actions: Action[] = [];
  if (!observed.namespaceExists) {
    actions.push(kubectlWithObject('create', namespaceObject(namespace), `create namespace ${namespace} (missing)`));
  }
  if (!observed.secretExists) {
    actions.push({
      reason: `create secret ${settings.secretName} from the ssh key (missing)`,
      argv: ['kubectl', 'create', 'secret', 'generic', settings.secretName, '-n', namespace, `--from-file=${settings.secretKey}=${settings.sshKeyPath}`],
      scope: objectScope('secret', settings.secretName),
    });
  }
  if (!observed.configMapExists) {
    actions.push(
      kubectlWithObject(
        'create',
        rulesConfigMap(settings, { rules: '', annotations: {} }),
        `create ConfigMap ${settings.configMapName} with empty ${settings.configMapKey} (missing)`,
      ),
    );
  }

  const pods = new Map(observed.pods.filter((pod) => pod.namespace === namespace).map((pod) => [pod.name, pod]));
  const services = new Map(observed.services.filter((service) => service.namespace === namespace).map((service) => [service.name, service]));
  const wanted = new Set(desired.services.map((service) => service.name));

  for (const service of desired.services) {
    if (!pods.has(service.name)) {
      actions.push(kubectlWithObject('create', forwarderPod(service.name, settings), `create forwarder pod ${service.name} (missing)`));
    }
    const existing = services.get(service.name);
    if (service.ports.length === 0) {
      if (existing && isManaged(existing.labels)) {
        actions.push(kubectlDelete('service', service.name, namespace, `delete service ${service.name} (the ExternalService has no ports)`, false));
      }
    } else if (!existing) {
      actions.push(kubectlWithObject('create', forwarderService(service, namespace), `create service ${service.name} (missing)`));
    } else if (isManaged(existing.labels)) {
      const change = serviceDifference(service, existing);
      if (change !== undefined) {
        actions.push(
          kubectlWithObject('replace', forwarderService(service, namespace, existing.clusterIP), `update service ${service.name} (${change})`),
        );
      }
    }
  }

  if (desired.deleteLeftovers) {
    for (const pod of [...pods.values()].sort(byName)) {
      if (!wanted.has(pod.name) && isManaged(pod.labels)) {
        actions.push(kubectlDelete('pod', pod.name, namespace, `delete forwarder pod ${pod.name} (its ExternalService is gone)`, false));
      }
    }
    for (const service of [...services.values()].sort(byName)) {
      if (!wanted.has(service.name) && isManaged(service.labels)) {
        actions.push(kubectlDelete('service', service.name, namespace, `delete service ${service.name} (its ExternalService is gone)`, false));
      }
    }
  }
  return actions;
}

/** planObjects for one cycle: the conf in force against the cycle's cluster reads. */
export function planCycleObjects(conf: Pick<ResolvedConf, 'services' | 'invalid'>, observed: ObservedCluster, settings: ObjectSettingsForPlan): Action[] {
  return planObjects(
    // While an invalid file without a known valid version might own some objects, none is deleted.
    { services: conf.services, deleteLeftovers: conf.invalid.every((invalid) => invalid.lastValidInForce) },
    {
      namespaceExists: observed.namespaceExists,
      secretExists: observed.secretExists,
      configMapExists: observed.configMap !== undefined,
      pods: observed.snapshot.pods,
      services: observed.snapshot.services,
    },
    settings,
  );
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Why an existing Service differs from the desired one, or undefined when it does not. */
export function serviceDifference(desired: Pick<ExternalService, 'name' | 'ports'>, observed: ServiceInfo): string | undefined {
  const want = servicePorts(desired.ports).map((port) => `${port.name ?? ''}/${port.protocol}/${port.port}->${port.targetPort}`);
  const have = observed.ports.map((port) => `${port.name ?? ''}/${port.protocol}/${port.port}->${String(port.targetPort ?? port.port)}`);
  if (want.join(',') !== have.join(',')) return `ports ${have.join(',') || 'none'} -> ${want.join(',')}`;
  const selector = Object.entries(observed.selector);
  if (selector.length !== 1 || observed.selector.externalService !== desired.name) return 'selector differs';
  return undefined;
}

/** Whether a Service's ports and selector are as desired. */
export function serviceIsCurrent(desired: Pick<ExternalService, 'name' | 'ports'>, observed: ServiceInfo): boolean {
  return serviceDifference(desired, observed) === undefined;
}

// ---------------------------------------------------------------------------------------------
// Delivery to the gateway node(s): scp to a temporary name, then an atomic rename there

export interface DeliverySettings {
  sshKeyPath: string;
  gatewayPath: string;
}

/** The temporary name on the gateway: fixed per content, next to the destination (same filesystem). */
export function temporaryGatewayPath(gatewayPath: string, rulesSha256: string): string {
  return `${gatewayPath}.tmp-${rulesSha256.slice(0, 16)}`;
}

/** The scope of a host's delivery actions: the rename waits for its copy. */
export function deliveryScope(host: string): string {
  return `gateway ${host}`;
}

/** The hosts that have not received these rules yet (from the ConfigMap's delivery annotation). */
export function hostsLacking(hosts: readonly string[], delivered: Readonly<Record<string, string>>, rulesSha256: string): string[] {
  return hosts.filter((host) => delivered[host] !== rulesSha256);
}

export interface DeliveryInput {
  hosts: readonly string[];
  /** host -> sha256 of the rules it has received (from the ConfigMap's annotation). */
  delivered: Readonly<Record<string, string>>;
  rulesSha256: string;
}

/** scp to a temporary name next to the destination, then a rename there, for each host lacking the rules. */
export function planDeliveries(input: DeliveryInput & { localFile: string }, settings: DeliverySettings): Action[] {
  const temporary = temporaryGatewayPath(settings.gatewayPath, input.rulesSha256);
  const ssh = ['-i', settings.sshKeyPath, '-o', 'BatchMode=yes'];
  return hostsLacking(input.hosts, input.delivered, input.rulesSha256).flatMap((host): Action[] => [
    {
      reason: `copy the rules to ${host}:${temporary} (${input.delivered[host] === undefined ? 'never delivered' : 'the gateway has older rules'})`,
      argv: ['scp', ...ssh, input.localFile, `${host}:${temporary}`],
      scope: deliveryScope(host),
    },
    {
      reason: `rename ${temporary} to ${settings.gatewayPath} on ${host}`,
      argv: ['ssh', ...ssh, host, 'mv', '-f', '--', temporary, settings.gatewayPath],
      scope: deliveryScope(host),
    },
  ]);
}

/**
 * host -> sha256 received, for the current hosts only, after this cycle's deliveries: a host
 * that lacked the rules holds them now unless one of its delivery actions failed.
 */
export function deliveredAfter(input: DeliveryInput, failedScopes: ReadonlySet<string | undefined>): Record<string, string> {
  const lacking = new Set(hostsLacking(input.hosts, input.delivered, input.rulesSha256));
  const state: Record<string, string> = {};
  for (const host of input.hosts) {
    const sha = lacking.has(host) && !failedScopes.has(deliveryScope(host)) ? input.rulesSha256 : input.delivered[host];
    if (sha !== undefined) state[host] = sha;
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Publishing: the ConfigMap holds the rules and what the controller must remember

export interface DesiredPublication {
  rules: string;
  delivered: Readonly<Record<string, string>>;
  lastValid: Readonly<Record<string, string>>;
}

/** The ConfigMap as it is after planObjects' actions ran (created empty when it was missing). */
export function configMapAfterInit(observed: ObservedConfigMap | undefined, settings: ObjectSettings): ObservedConfigMap {
  return observed ?? { data: { [settings.configMapKey]: '' }, annotations: {}, labels: { [MANAGED_BY_LABEL]: MANAGED_BY } };
}

/** The most data (keys and values, in bytes) the API server accepts in one ConfigMap: 1 MiB. */
export const CONFIGMAP_DATA_LIMIT = 1024 * 1024;

function dataSize(data: Readonly<Record<string, string>>): number {
  return Object.entries(data).reduce((total, [key, value]) => total + Buffer.byteLength(key) + Buffer.byteLength(value), 0);
}

/**
 * Why the rules cannot be published, or undefined when they can: the ConfigMap they would make
 * (with the keys others put on it) must stay within the API server's limit, or the write would be
 * rejected. Such rules go nowhere, not even to the gateways, so that every reader keeps the same,
 * previous rules.
 */
export function publicationProblem(rules: string, observed: ObservedConfigMap, settings: ObjectSettings): string | undefined {
  const size = dataSize({ ...observed.data, [settings.configMapKey]: rules });
  if (size <= CONFIGMAP_DATA_LIMIT) return undefined;
  return (
    `the rules would make ConfigMap ${settings.configMapName} hold ${size} bytes of data, over the 1 MiB (${CONFIGMAP_DATA_LIMIT} bytes) ` +
    'a ConfigMap may hold: nothing was published; the ConfigMap and the gateways keep the previous rules'
  );
}

/** The most all annotations of one object may hold (keys and values, in bytes): 256 KiB. */
export const ANNOTATIONS_LIMIT = 256 * 1024;

/**
 * The last valid conf files to record, within the API server's annotation limit: when the new
 * record would not fit beside the ConfigMap's other annotations, the previous record is kept (a
 * write the API server rejects would lose it) and `problem` says so with the sizes.
 */
export function lastValidWithinLimit(
  lastValid: Readonly<Record<string, string>>,
  delivered: Readonly<Record<string, string>>,
  observed: ObservedConfigMap,
  settings: ObjectSettings,
): { lastValid: Readonly<Record<string, string>>; problem?: string } {
  const annotations = { ...observed.annotations, [DELIVERED_ANNOTATION]: stableJson(delivered), [LAST_VALID_ANNOTATION]: stableJson(lastValid) };
  const size = dataSize(annotations);
  if (size <= ANNOTATIONS_LIMIT) return { lastValid };
  return {
    lastValid: parseStringMap(observed.annotations[LAST_VALID_ANNOTATION]),
    problem:
      `the last valid versions of ${Object.keys(lastValid).length} conf file(s) would make the annotations of ConfigMap ${settings.configMapName} ` +
      `${size} bytes, over the 256 KiB (${ANNOTATIONS_LIMIT} bytes) an object may hold: the previous record (${LAST_VALID_ANNOTATION}) is kept, ` +
      'so a file that turns invalid falls back to the version recorded then',
  };
}

export function planPublish(desired: DesiredPublication, observed: ObservedConfigMap, settings: ObjectSettings): Action[] {
  const annotations = {
    [DELIVERED_ANNOTATION]: stableJson(desired.delivered),
    [LAST_VALID_ANNOTATION]: stableJson(desired.lastValid),
  };
  const reasons: string[] = [];
  if (observed.data[settings.configMapKey] !== desired.rules) reasons.push('new rules');
  if (observed.annotations[DELIVERED_ANNOTATION] !== annotations[DELIVERED_ANNOTATION]) reasons.push('delivery state');
  if (observed.annotations[LAST_VALID_ANNOTATION] !== annotations[LAST_VALID_ANNOTATION]) reasons.push('last valid conf');
  if (reasons.length === 0) return [];
  // Keys and annotations that others put on the ConfigMap are kept.
  const object = rulesConfigMap(settings, { rules: desired.rules, annotations: { ...observed.annotations, ...annotations } });
  object.data = { ...observed.data, [settings.configMapKey]: desired.rules };
  object.metadata.labels = { ...observed.labels, [MANAGED_BY_LABEL]: MANAGED_BY };
  return [kubectlWithObject('replace', object, `publish ConfigMap ${settings.configMapName} (${reasons.join(', ')})`)];
}

// ---------------------------------------------------------------------------------------------
// Teardown

export interface ObservedForTeardown {
  /** The namespace's labels; undefined when it does not exist. */
  namespace: Record<string, string> | undefined;
  secretExists: boolean;
  /** The rules ConfigMap's labels; undefined when it does not exist. */
  configMap: Record<string, string> | undefined;
  pods: readonly { name: string; labels: Record<string, string> }[];
  services: readonly { name: string; labels: Record<string, string> }[];
}

export interface TeardownPlan {
  actions: Action[];
  /** What exists but is left, each with why. */
  kept: string[];
}

/**
 * Deletes only what the controller made: pods, services, the ConfigMap and the namespace that carry
 * its managed-by label (a FORWARDER_NAMESPACE such as `default` or `prod` is never deleted with
 * everything in it), and the secret, which `kubectl create secret` cannot label, only inside a
 * namespace the controller made. Everything else that is found is kept and named with the reason.
 */
export function planTeardown(listed: readonly string[], observed: ObservedForTeardown, settings: ObjectSettings): TeardownPlan {
  const { namespace } = settings;
  const names = new Set(listed);
  const plan: TeardownPlan = { actions: [], kept: [] };
  const notOurs = `it does not carry the label ${MANAGED_BY_LABEL}=${MANAGED_BY}, so the controller did not make it`;
  for (const [kind, objects] of [['pod', observed.pods], ['service', observed.services]] as const) {
    for (const object of [...objects].sort(byName)) {
      if (isManaged(object.labels)) plan.actions.push(kubectlDelete(kind, object.name, namespace, `delete ${kind === 'pod' ? 'forwarder pod' : 'service'} ${object.name}`, true));
      else if (names.has(object.name)) plan.kept.push(`${kind} ${object.name} in namespace ${namespace} kept: ${notOurs}`);
    }
  }
  if (observed.configMap !== undefined) {
    if (isManaged(observed.configMap)) plan.actions.push(kubectlDelete('configmap', settings.configMapName, namespace, `delete ConfigMap ${settings.configMapName}`, true));
    else plan.kept.push(`ConfigMap ${settings.configMapName} in namespace ${namespace} kept: ${notOurs}`);
  }
  const ourNamespace = observed.namespace !== undefined && isManaged(observed.namespace);
  if (observed.secretExists) {
    if (ourNamespace) plan.actions.push(kubectlDelete('secret', settings.secretName, namespace, `delete secret ${settings.secretName}`, true));
    else plan.kept.push(`secret ${settings.secretName} in namespace ${namespace} kept: the namespace is not one the controller made, so the secret may not be its own`);
  }
  if (observed.namespace !== undefined) {
    if (ourNamespace) plan.actions.push(kubectlDelete('namespace', namespace, undefined, `delete namespace ${namespace}`, true));
    else plan.kept.push(`namespace ${namespace} kept: ${notOurs}`);
  }
  return plan;
}
