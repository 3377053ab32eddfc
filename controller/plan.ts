import path from 'node:path';
import { PARALLEL_LIMIT, type Action } from '../lib/action.js';
import { DEFAULT_TIMEOUT_MS } from '../lib/exec.js';
import type { ExternalService } from '../lib/externalservice.js';
import {
  DELIVERED_ANNOTATION,
  EXTERNAL_SERVICE_LABEL,
  forwarderAccountName,
  forwarderConfigMap,
  forwarderConfigMapName,
  forwarderPod,
  forwarderRole,
  forwarderRoleBinding,
  forwarderService,
  forwarderServiceAccount,
  isManaged,
  LAST_VALID_ANNOTATION,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  namespaceObject,
  parseStringMap,
  POD_SPEC_ANNOTATION,
  servicePorts,
  stableJson,
  stateConfigMap,
  type ForwarderConfigMapContent,
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

/** What one object needs, before the changes of a kind and verb are sent in one kubectl call. */
export interface ObjectChange {
  verb: 'create' | 'replace' | 'delete';
  kind: ObjectKind;
  name: string;
  /** Why (what is wrong or missing); status shows one line per change. */
  reason: string;
  /** The object to send (create, replace). */
  object?: KubeObject;
  /** Delete: wait until the object is gone (its name is used again at once, or teardown waits). */
  wait?: boolean;
}

export type ObjectKind = 'Namespace' | 'Secret' | 'ServiceAccount' | 'Role' | 'RoleBinding' | 'ConfigMap' | 'Pod' | 'Service';

/** kubectl's resource names: RBAC's in full, so that no other API group's kind of that name is meant. */
const RESOURCE: Record<ObjectKind, string> = {
  Namespace: 'namespace',
  Secret: 'secret',
  ServiceAccount: 'serviceaccounts',
  Role: 'roles.rbac.authorization.k8s.io',
  RoleBinding: 'rolebindings.rbac.authorization.k8s.io',
  ConfigMap: 'configmaps',
  Pod: 'pods',
  Service: 'services',
};

/** Deleting a pod that must be gone before it is made again waits for its containers to stop. */
const DELETE_WAIT_TIMEOUT_MS = 120_000;
/**
 * A call's time limit grows with its objects: kubectl sends them one request after the other, and
 * on a loaded 2-core machine a List of 125 Services took 55 s, close to lib/exec's 60 s.
 */
const TIMEOUT_PER_OBJECT_MS = 1000;

function change(verb: 'create' | 'replace', object: KubeObject, reason: string): ObjectChange {
  return { verb, kind: object.kind as ObjectKind, name: object.metadata.name, reason, object };
}

function deletion(kind: ObjectKind, name: string, reason: string, wait = false): ObjectChange {
  return { verb: 'delete', kind, name, reason, wait };
}

const MAX_NAMES_IN_REASON = 5;

/** `create 3 ConfigMap(s) (missing): a, b, c`: the names first, then how many more. */
function groupReason(changes: readonly ObjectChange[]): string {
  if (changes.length === 1) return (changes[0] as ObjectChange).reason;
  const names = changes.slice(0, MAX_NAMES_IN_REASON).map((entry) => entry.name);
  const more = changes.length > MAX_NAMES_IN_REASON ? `, and ${changes.length - MAX_NAMES_IN_REASON} more` : '';
  const whys = [...new Set(changes.map((entry) => /\(([^()]*)\)$/.exec(entry.reason)?.[1]).filter((why) => why !== undefined))];
  return `${changes[0]?.verb} ${changes.length} ${changes[0]?.kind} objects${whys.length === 1 ? ` (${whys[0]})` : ''}: ${names.join(', ')}${more}`;
}

/**
 * The kubectl calls that make the changes: one per run of changes of the same kind and verb (a
 * List on stdin, or every name on one delete), so that the number of calls does not grow with the
 * number of ExternalServices. kubectl goes on after an object fails and names it in its error.
 * Each call is its own scope: a failed call never holds back another.
 */
export function changesToActions(changes: readonly ObjectChange[], namespace: string): Action[] {
  const actions: Action[] = [];
  let index = 0;
  while (index < changes.length) {
    const first = changes[index] as ObjectChange;
    const group = [first];
    while (++index < changes.length) {
      const next = changes[index] as ObjectChange;
      if (next.verb !== first.verb || next.kind !== first.kind || next.wait !== first.wait || first.kind === 'Namespace' || first.kind === 'Secret') break;
      group.push(next);
    }
    actions.push(...groupActions(group, namespace));
  }
  return actions;
}

/**
 * A large group goes as PARALLEL_LIMIT calls at once (each a part of the List), still a constant
 * number: the API server's storage commits concurrent writes together, so that a thousand objects
 * take a fraction of the time one stream of requests would.
 */
const PARALLEL_FROM = 2 * PARALLEL_LIMIT;

function groupActions(group: readonly ObjectChange[], namespace: string): Action[] {
  if (group.length < PARALLEL_FROM) return [groupAction(group, namespace)];
  const bound = (index: number): number => Math.floor((index * group.length) / PARALLEL_LIMIT);
  const parts = Array.from({ length: PARALLEL_LIMIT }, (_, index) => group.slice(bound(index), bound(index + 1)));
  const first = group[0] as ObjectChange;
  return parts.map((part, index) => ({
    ...groupAction(part, namespace, `part ${index + 1} of ${parts.length}`),
    parallel: `${first.verb} ${RESOURCE[first.kind]}`,
  }));
}

function groupAction(group: readonly ObjectChange[], namespace: string, part?: string): Action {
  const first = group[0] as ObjectChange;
  const reason = part === undefined ? groupReason(group) : `${groupReason(group)} (${part})`;
  const scope = `${first.verb} ${RESOURCE[first.kind]}${group.length === 1 ? `/${first.name}` : part === undefined ? '' : ` ${part}`}`;
  if (first.verb === 'delete') {
    const argv = ['kubectl', 'delete', RESOURCE[first.kind], ...group.map((entry) => entry.name)];
    if (first.kind !== 'Namespace') argv.push('-n', namespace);
    argv.push('--ignore-not-found');
    if (!first.wait) argv.push('--wait=false');
    return { reason, argv, scope, timeoutMs: (first.wait ? DELETE_WAIT_TIMEOUT_MS : DEFAULT_TIMEOUT_MS) + group.length * TIMEOUT_PER_OBJECT_MS };
  }
  const objects = group.map((entry) => entry.object as KubeObject);
  const input = objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
  return { reason, argv: ['kubectl', first.verb, '-f', '-'], input: `${JSON.stringify(input, null, 2)}\n`, scope, timeoutMs: DEFAULT_TIMEOUT_MS + group.length * TIMEOUT_PER_OBJECT_MS };
}

// ---------------------------------------------------------------------------------------------
// Objects: namespace, secret, each forwarder's ServiceAccount, Role, RoleBinding, ConfigMap, pod
// and Service, the leftovers of ExternalServices that are gone

export interface ObjectSettingsForPlan extends PodSettings {
  sshKeyPath: string;
}

export interface DesiredObjects {
  services: readonly Pick<ExternalService, 'name' | 'ports'>[];
  /** False while an invalid conf file without a known valid version might own some of the objects. */
  deleteLeftovers: boolean;
  /** Each forwarder ConfigMap's content (by ExternalService name); a missing ConfigMap is created with it. */
  configMaps: ReadonlyMap<string, ForwarderConfigMapContent>;
}

export interface ObservedObjects {
  namespaceExists: boolean;
  secretExists: boolean;
  /** The state ConfigMap (CONFIGMAP_NAME). */
  configMapExists: boolean;
  /** Pods of the forwarder namespace. */
  pods: readonly PodInfo[];
  /** Services of any namespace (only the forwarder namespace's are considered). */
  services: readonly ServiceInfo[];
  /** The forwarders' ConfigMaps, ServiceAccounts, Roles and RoleBindings (the controller's label). */
  forwarderObjects: ObservedForwarderObjects;
}

export interface ObservedForwarderObjects {
  configMaps: readonly ObservedForwarderConfigMap[];
  serviceAccounts: readonly NamedObject[];
  roles: readonly ObservedRole[];
  roleBindings: readonly NamedObject[];
}

export interface NamedObject {
  name: string;
  labels: Record<string, string>;
}

export interface ObservedRole extends NamedObject {
  rules: unknown;
}

export interface ObservedForwarderConfigMap extends NamedObject {
  data: Record<string, string>;
  annotations: Record<string, string>;
}

export function emptyForwarderObjects(): ObservedForwarderObjects {
  return { configMaps: [], serviceAccounts: [], roles: [], roleBindings: [] };
}

/** The ExternalService a managed object belongs to (its externalService label), if any. */
function ownerOf(object: NamedObject): string | undefined {
  return isManaged(object.labels) ? object.labels[EXTERNAL_SERVICE_LABEL] : undefined;
}

export function planObjects(desired: DesiredObjects, observed: ObservedObjects, settings: ObjectSettingsForPlan): ObjectChange[] {
  const { namespace } = settings;
  const changes: ObjectChange[] = [];
  if (!observed.namespaceExists) changes.push(change('create', namespaceObject(namespace), `create namespace ${namespace} (missing)`));
  if (!observed.secretExists) {
    changes.push({ verb: 'create', kind: 'Secret', name: settings.secretName, reason: `create secret ${settings.secretName} from the ssh key (missing)` });
  }
  if (!observed.configMapExists) {
    changes.push(change('create', stateConfigMap(settings, { annotations: {}, data: {}, labels: {} }), `create ConfigMap ${settings.configMapName} (missing)`));
  }

  const byName = <T extends NamedObject>(objects: readonly T[]): Map<string, T> => new Map(objects.map((object) => [object.name, object]));
  const { forwarderObjects } = observed;
  const accounts = byName(forwarderObjects.serviceAccounts);
  const roles = byName(forwarderObjects.roles);
  const bindings = byName(forwarderObjects.roleBindings);
  const configMaps = byName(forwarderObjects.configMaps);
  const pods = new Map(observed.pods.filter((pod) => pod.namespace === namespace).map((pod) => [pod.name, pod]));
  const services = new Map(observed.services.filter((service) => service.namespace === namespace).map((service) => [service.name, service]));

  // In the order they build on each other: the pod names its ServiceAccount and mounts its ConfigMap.
  const accountChanges: ObjectChange[] = [];
  const roleChanges: ObjectChange[] = [];
  const bindingChanges: ObjectChange[] = [];
  const configMapChanges: ObjectChange[] = [];
  const podDeletions: ObjectChange[] = [];
  const podChanges: ObjectChange[] = [];
  const serviceChanges: ObjectChange[] = [];
  for (const service of desired.services) {
    const account = forwarderAccountName(service.name);
    if (!accounts.has(account)) accountChanges.push(change('create', forwarderServiceAccount(service.name, namespace), `create ServiceAccount ${account} (missing)`));
    const role = roles.get(account);
    const wantedRole = forwarderRole(service.name, settings);
    if (role === undefined) roleChanges.push(change('create', wantedRole, `create Role ${account} (missing)`));
    else if (rulesKey(role.rules) !== rulesKey(wantedRole.rules)) roleChanges.push(change('replace', wantedRole, `update Role ${account} (its rules differ)`));
    if (!bindings.has(account)) bindingChanges.push(change('create', forwarderRoleBinding(service.name, namespace), `create RoleBinding ${account} (missing)`));
    const configMapName = forwarderConfigMapName(service.name, settings);
    const content = desired.configMaps.get(service.name);
    if (!configMaps.has(configMapName) && content !== undefined) {
      configMapChanges.push(change('create', forwarderConfigMap(service.name, settings, content), `create ConfigMap ${configMapName} (missing)`));
    }

    const wantedPod = forwarderPod(service.name, settings);
    const pod = pods.get(service.name);
    if (pod === undefined) {
      podChanges.push(change('create', wantedPod, `create forwarder pod ${service.name} (missing)`));
    } else if (isManaged(pod.labels) && pod.specSha256 !== wantedPod.metadata.annotations?.[POD_SPEC_ANNOTATION]) {
      podDeletions.push(deletion('Pod', service.name, `delete forwarder pod ${service.name} (made from another spec)`, true));
      podChanges.push(change('create', wantedPod, `create forwarder pod ${service.name} (made from another spec)`));
    }

    const existing = services.get(service.name);
    if (service.ports.length === 0) {
      if (existing && isManaged(existing.labels)) serviceChanges.push(deletion('Service', service.name, `delete service ${service.name} (the ExternalService has no ports)`));
    } else if (!existing) {
      serviceChanges.push(change('create', forwarderService(service, namespace), `create service ${service.name} (missing)`));
    } else if (isManaged(existing.labels)) {
      const difference = serviceDifference(service, existing);
      if (difference !== undefined) {
        serviceChanges.push(change('replace', forwarderService(service, namespace, existing.clusterIP), `update service ${service.name} (${difference})`));
      }
    }
  }
  changes.push(...accountChanges, ...sortByVerb(roleChanges), ...bindingChanges, ...configMapChanges, ...podDeletions, ...podChanges, ...sortByVerb(serviceChanges));

  if (desired.deleteLeftovers) {
    const wanted = new Set(desired.services.map((service) => service.name));
    const gone = (object: NamedObject): boolean => {
      const owner = ownerOf(object);
      return owner !== undefined && !wanted.has(owner);
    };
    const leftovers: [ObjectKind, string, readonly NamedObject[]][] = [
      ['Pod', 'forwarder pod', [...pods.values()].filter((pod) => isManaged(pod.labels) && !wanted.has(pod.name))],
      ['Service', 'service', [...services.values()].filter((service) => isManaged(service.labels) && !wanted.has(service.name))],
      ['ConfigMap', 'ConfigMap', forwarderObjects.configMaps.filter(gone)],
      ['RoleBinding', 'RoleBinding', forwarderObjects.roleBindings.filter(gone)],
      ['Role', 'Role', forwarderObjects.roles.filter(gone)],
      ['ServiceAccount', 'ServiceAccount', forwarderObjects.serviceAccounts.filter(gone)],
    ];
    for (const [kind, what, objects] of leftovers) {
      for (const object of [...objects].sort(byObjectName)) changes.push(deletion(kind, object.name, `delete ${what} ${object.name} (its ExternalService is gone)`));
    }
  }
  return changes;
}

/** A Role's rules as comparable text, whatever the order of their fields (the API server writes its own). */
export function rulesKey(rules: unknown): string {
  if (!Array.isArray(rules)) return '';
  const list = (value: unknown): string => (Array.isArray(value) ? value.map(String).join(',') : '');
  return rules
    .map((rule: unknown) => {
      const entry = (typeof rule === 'object' && rule !== null ? rule : {}) as Record<string, unknown>;
      return ['apiGroups', 'resources', 'resourceNames', 'verbs', 'nonResourceURLs'].map((key) => list(entry[key])).join('|');
    })
    .join(';');
}

/** Creations, then replacements, then deletions, each in the order planned. */
function sortByVerb(changes: readonly ObjectChange[]): ObjectChange[] {
  const order = { create: 0, replace: 1, delete: 2 };
  return [...changes].sort((a, b) => order[a.verb] - order[b.verb]);
}

/** The command of the secret, which kubectl makes from the key file. */
export function secretAction(settings: ObjectSettingsForPlan): Action {
  return {
    reason: `create secret ${settings.secretName} from the ssh key (missing)`,
    argv: ['kubectl', 'create', 'secret', 'generic', settings.secretName, '-n', settings.namespace, `--from-file=${settings.secretKey}=${settings.sshKeyPath}`],
    scope: `create secret/${settings.secretName}`,
  };
}

/** The actions of planned changes: the secret's own command, the rest grouped (changesToActions). */
export function objectActions(changes: readonly ObjectChange[], settings: ObjectSettingsForPlan): Action[] {
  const secret = changes.findIndex((entry) => entry.kind === 'Secret' && entry.verb === 'create');
  if (secret === -1) return changesToActions(changes, settings.namespace);
  return [...changesToActions(changes.slice(0, secret), settings.namespace), secretAction(settings), ...changesToActions(changes.slice(secret + 1), settings.namespace)];
}

/** planObjects for one cycle: the conf in force against the cycle's cluster reads. */
export function planCycleObjects(
  conf: Pick<ResolvedConf, 'services' | 'invalid'>,
  observed: ObservedCluster,
  configMaps: ReadonlyMap<string, ForwarderConfigMapContent>,
  settings: ObjectSettingsForPlan,
): ObjectChange[] {
  return planObjects(
    // While an invalid file without a known valid version might own some objects, none is deleted.
    { services: conf.services, deleteLeftovers: conf.invalid.every((invalid) => invalid.lastValidInForce), configMaps },
    {
      namespaceExists: observed.namespaceExists,
      secretExists: observed.secretExists,
      configMapExists: observed.configMap !== undefined,
      pods: observed.snapshot.pods,
      services: observed.snapshot.services,
      forwarderObjects: observed.forwarderObjects,
    },
    settings,
  );
}

function byObjectName(a: { name: string }, b: { name: string }): number {
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
// Publishing: each forwarder's ConfigMap holds its rules and its conf file's last valid version;
// the state ConfigMap (CONFIGMAP_NAME) holds which rules each gateway host received

/** The most data (keys and values, in bytes) the API server accepts in one ConfigMap: 1 MiB. */
export const CONFIGMAP_DATA_LIMIT = 1024 * 1024;
/** The most all annotations of one object may hold (keys and values, in bytes): 256 KiB. */
export const ANNOTATIONS_LIMIT = 256 * 1024;

function dataSize(data: Readonly<Record<string, string>>): number {
  return Object.entries(data).reduce((total, [key, value]) => total + Buffer.byteLength(key) + Buffer.byteLength(value), 0);
}

/**
 * Why a forwarder's ConfigMap cannot hold this content, or undefined when it can: the API server
 * rejects data over 1 MiB and annotations over 256 KiB. Such a ConfigMap is not written (its
 * forwarder keeps its previous rules) and the problem is reported.
 */
export function forwarderConfigMapProblem(name: string, content: ForwarderConfigMapContent, settings: ObjectSettings): string | undefined {
  const object = forwarderConfigMap(name, settings, content);
  const data = dataSize(object.data as Record<string, string>);
  const annotations = dataSize(object.metadata.annotations ?? {});
  const configMap = object.metadata.name;
  if (data > CONFIGMAP_DATA_LIMIT) {
    return `the rules of ${name} would make ConfigMap ${configMap} hold ${data} bytes of data, over the 1 MiB (${CONFIGMAP_DATA_LIMIT} bytes) a ConfigMap may hold: it keeps the previous rules`;
  }
  if (annotations > ANNOTATIONS_LIMIT) {
    return `the last valid version of the conf file of ${name} would make the annotations of ConfigMap ${configMap} ${annotations} bytes, over the 256 KiB (${ANNOTATIONS_LIMIT} bytes) an object may hold: it keeps the previous record`;
  }
  return undefined;
}

/**
 * Each forwarder ConfigMap's content: the forwarder's own rules document and the last valid
 * version of the conf file that defines it. One that would not fit is left out (not written) and
 * its problem reported.
 */
export function desiredForwarderConfigMaps(
  services: readonly { name: string; file: string }[],
  documents: ReadonlyMap<string, string>,
  lastValid: Readonly<Record<string, string>>,
  settings: ObjectSettings,
): { configMaps: Map<string, ForwarderConfigMapContent>; problems: string[] } {
  const configMaps = new Map<string, ForwarderConfigMapContent>();
  const problems: string[] = [];
  for (const service of services) {
    const key = path.basename(service.file);
    const record = lastValid[key];
    const content = { rules: documents.get(service.name) ?? '', lastValid: record === undefined ? {} : { [key]: record } };
    const problem = forwarderConfigMapProblem(service.name, content, settings);
    if (problem === undefined) configMaps.set(service.name, content);
    else problems.push(problem);
  }
  return { configMaps, problems };
}

/**
 * The forwarder ConfigMaps whose rules or record of the last valid conf differ from the desired
 * ones (a missing one is created by planObjects). The replacements are applied after the gateways
 * received the new rules, so that a forwarder never asks for a tunnel its gateway does not permit yet.
 */
export function planForwarderConfigMaps(
  desired: ReadonlyMap<string, ForwarderConfigMapContent>,
  observed: readonly ObservedForwarderConfigMap[],
  settings: ObjectSettings,
): ObjectChange[] {
  const byName = new Map(observed.map((configMap) => [configMap.name, configMap]));
  const changes: ObjectChange[] = [];
  for (const [name, content] of desired) {
    const current = byName.get(forwarderConfigMapName(name, settings));
    if (current === undefined) continue;
    const wanted = forwarderConfigMap(name, settings, content);
    const reasons: string[] = [];
    if (current.data[settings.configMapKey] !== content.rules) reasons.push('new rules');
    if (current.annotations[LAST_VALID_ANNOTATION] !== wanted.metadata.annotations?.[LAST_VALID_ANNOTATION]) reasons.push('last valid conf');
    if (reasons.length === 0) continue;
    // Keys, labels and annotations that others put on the ConfigMap are kept.
    wanted.data = { ...current.data, ...(wanted.data as Record<string, string>) };
    wanted.metadata.labels = { ...current.labels, ...wanted.metadata.labels };
    wanted.metadata.annotations = { ...current.annotations, ...wanted.metadata.annotations };
    changes.push(change('replace', wanted, `publish ConfigMap ${wanted.metadata.name} (${reasons.join(', ')})`));
  }
  return changes;
}

/**
 * The last valid version of every conf file, as recorded on the forwarder ConfigMaps (each holds
 * its own file's) and, from before rules per forwarder, on the state ConfigMap; a forwarder's
 * record wins.
 */
export function rememberedConf(stateConfigMap: ObservedConfigMap | undefined, configMaps: readonly ObservedForwarderConfigMap[]): Record<string, string> {
  const remembered = parseStringMap(stateConfigMap?.annotations[LAST_VALID_ANNOTATION]);
  for (const configMap of [...configMaps].sort(byObjectName)) {
    if (ownerOf(configMap) !== undefined) Object.assign(remembered, parseStringMap(configMap.annotations[LAST_VALID_ANNOTATION]));
  }
  return remembered;
}

export interface DesiredState {
  delivered: Readonly<Record<string, string>>;
  /**
   * Drop what the state ConfigMap held before rules per forwarder (the whole rules document and
   * every conf file's last valid version), once the forwarder ConfigMaps hold it.
   */
  dropLegacy: boolean;
}

/** The state ConfigMap as it is after planObjects' changes ran (created empty when it was missing). */
export function configMapAfterInit(observed: ObservedConfigMap | undefined): ObservedConfigMap {
  return observed ?? { data: {}, annotations: {}, labels: { [MANAGED_BY_LABEL]: MANAGED_BY } };
}

export function planState(desired: DesiredState, observed: ObservedConfigMap, settings: ObjectSettings): ObjectChange[] {
  const delivered = stableJson(desired.delivered);
  const reasons: string[] = [];
  if (observed.annotations[DELIVERED_ANNOTATION] !== delivered) reasons.push('delivery state');
  const legacy = desired.dropLegacy && (observed.annotations[LAST_VALID_ANNOTATION] !== undefined || observed.data[settings.configMapKey] !== undefined);
  if (legacy) reasons.push('the rules and conf records now on the forwarder ConfigMaps');
  if (reasons.length === 0) return [];
  const annotations: Record<string, string> = { ...observed.annotations, [DELIVERED_ANNOTATION]: delivered };
  const data = { ...observed.data };
  if (legacy) {
    delete annotations[LAST_VALID_ANNOTATION];
    delete data[settings.configMapKey];
  }
  return [change('replace', stateConfigMap(settings, { annotations, data, labels: observed.labels }), `publish ConfigMap ${settings.configMapName} (${reasons.join(', ')})`)];
}

// ---------------------------------------------------------------------------------------------
// Teardown

export interface ObservedForTeardown {
  /** The namespace's labels; undefined when it does not exist. */
  namespace: Record<string, string> | undefined;
  secretExists: boolean;
  /** The state ConfigMap's labels; undefined when it does not exist. */
  configMap: Record<string, string> | undefined;
  pods: readonly NamedObject[];
  services: readonly NamedObject[];
  forwarderObjects: ObservedForwarderObjects;
}

export interface TeardownPlan {
  changes: ObjectChange[];
  /** What exists but is left, each with why. */
  kept: string[];
}

/**
 * Deletes only what the controller made: the objects that carry its managed-by label (pods,
 * services, the forwarders' ConfigMaps, ServiceAccounts, Roles and RoleBindings, the state
 * ConfigMap and the namespace; a FORWARDER_NAMESPACE such as `default` or `prod` is never deleted
 * with everything in it), and the secret, which `kubectl create secret` cannot label, only inside
 * a namespace the controller made. Everything else that is found is kept and named with the reason.
 * Each deletion waits until the objects are gone.
 */
export function planTeardown(listed: readonly string[], observed: ObservedForTeardown, settings: ObjectSettings): TeardownPlan {
  const { namespace } = settings;
  const names = new Set(listed);
  const plan: TeardownPlan = { changes: [], kept: [] };
  const notOurs = `it does not carry the label ${MANAGED_BY_LABEL}=${MANAGED_BY}, so the controller did not make it`;
  for (const [kind, what, objects] of [['Pod', 'forwarder pod', observed.pods], ['Service', 'service', observed.services]] as const) {
    for (const object of [...objects].sort(byObjectName)) {
      if (isManaged(object.labels)) plan.changes.push(deletion(kind, object.name, `delete ${what} ${object.name}`, true));
      else if (names.has(object.name)) plan.kept.push(`${kind.toLowerCase()} ${object.name} in namespace ${namespace} kept: ${notOurs}`);
    }
  }
  const { forwarderObjects } = observed;
  const forwarderKinds: [ObjectKind, readonly NamedObject[]][] = [
    ['RoleBinding', forwarderObjects.roleBindings],
    ['Role', forwarderObjects.roles],
    ['ServiceAccount', forwarderObjects.serviceAccounts],
    ['ConfigMap', forwarderObjects.configMaps.filter((configMap) => configMap.name !== settings.configMapName)],
  ];
  for (const [kind, objects] of forwarderKinds) {
    for (const object of [...objects].sort(byObjectName)) {
      if (isManaged(object.labels)) plan.changes.push(deletion(kind, object.name, `delete ${kind} ${object.name}`, true));
    }
  }
  if (observed.configMap !== undefined) {
    if (isManaged(observed.configMap)) plan.changes.push(deletion('ConfigMap', settings.configMapName, `delete ConfigMap ${settings.configMapName}`, true));
    else plan.kept.push(`ConfigMap ${settings.configMapName} in namespace ${namespace} kept: ${notOurs}`);
  }
  const ourNamespace = observed.namespace !== undefined && isManaged(observed.namespace);
  if (observed.secretExists) {
    if (ourNamespace) plan.changes.push(deletion('Secret', settings.secretName, `delete secret ${settings.secretName}`, true));
    else plan.kept.push(`secret ${settings.secretName} in namespace ${namespace} kept: the namespace is not one the controller made, so the secret may not be its own`);
  }
  if (observed.namespace !== undefined) {
    if (ourNamespace) plan.changes.push(deletion('Namespace', namespace, `delete namespace ${namespace}`, true));
    else plan.kept.push(`namespace ${namespace} kept: ${notOurs}`);
  }
  return plan;
}
