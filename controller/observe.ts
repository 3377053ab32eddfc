import { run } from '../lib/exec.js';
import { isPlainObject } from '../lib/yaml.js';
import { MANAGED_BY, MANAGED_BY_LABEL } from './objects.js';
import type { NamedObject, ObservedForwarderConfigMap, ObservedForwarderObjects, ObservedRole } from './plan.js';
import type { ObjectSettings } from './settings.js';
import { apiListPath, kubectlGetJson, kubectlRawList, readClusterSnapshot, stringMap, type ClusterSnapshot, type ObjectMaps } from './snapshot.js';

/**
 * What the controller reads each cycle, with a constant number of kubectl calls: the cluster
 * snapshot (pods, services, endpoints) plus the namespace, the secret, the state ConfigMap and the
 * forwarders' ConfigMaps, ServiceAccounts, Roles and RoleBindings (one call per kind).
 * Any failing read throws, so a cycle never acts on a partial picture.
 */

export interface ObservedConfigMap extends ObjectMaps {
  data: Record<string, string>;
}

export interface ObservedCluster {
  snapshot: ClusterSnapshot;
  namespaceExists: boolean;
  secretExists: boolean;
  configMap: ObservedConfigMap | undefined;
  forwarderObjects: ObservedForwarderObjects;
}

/** What teardown needs: the controller's objects in its namespace. */
export interface ObservedNamespace {
  /** Labels of the namespace and of the rules ConfigMap; undefined for one that does not exist. */
  namespace: Record<string, string> | undefined;
  secretExists: boolean;
  configMap: Record<string, string> | undefined;
  pods: NamedObject[];
  services: NamedObject[];
  forwarderObjects: ObservedForwarderObjects;
}

interface ReadOptions {
  signal?: AbortSignal;
}

export async function observeCluster(settings: ObjectSettings, options: ReadOptions = {}): Promise<ObservedCluster> {
  const [snapshot, namespaceExists, secretExists, configMap, forwarderObjects] = await Promise.all([
    readClusterSnapshot({ namespace: settings.namespace, signal: options.signal }),
    exists(['namespace', settings.namespace], options),
    exists(['secret', settings.secretName, '-n', settings.namespace], options),
    readConfigMap(settings, options),
    readForwarderObjects(settings.namespace, options),
  ]);
  return { snapshot, namespaceExists, secretExists, configMap, forwarderObjects };
}

export async function observeNamespace(settings: ObjectSettings, options: ReadOptions = {}): Promise<ObservedNamespace> {
  const [namespace, secretExists, configMap, pods, services, forwarderObjects] = await Promise.all([
    labelsIfExists(['namespace', settings.namespace], options),
    exists(['secret', settings.secretName, '-n', settings.namespace], options),
    labelsIfExists(['configmap', settings.configMapName, '-n', settings.namespace], options),
    list('pods', settings.namespace, options),
    list('services', settings.namespace, options),
    readForwarderObjects(settings.namespace, options),
  ]);
  return { namespace, secretExists, configMap, pods, services, forwarderObjects };
}

/** `kubectl get ... --ignore-not-found` prints nothing for a missing object and fails on real errors. */
async function exists(args: string[], options: ReadOptions): Promise<boolean> {
  const result = await run('kubectl', ['get', ...args, '-o', 'name', '--ignore-not-found'], { signal: options.signal });
  return result.stdout.trim() !== '';
}

async function labelsIfExists(args: string[], options: ReadOptions): Promise<Record<string, string> | undefined> {
  const object = await kubectlGetJson([...args, '--ignore-not-found'], options);
  if (object === undefined) return undefined;
  return stringMap(isPlainObject(object.metadata) ? object.metadata.labels : undefined);
}

async function readConfigMap(settings: ObjectSettings, options: ReadOptions): Promise<ObservedConfigMap | undefined> {
  const object = await kubectlGetJson(['configmap', settings.configMapName, '-n', settings.namespace, '--ignore-not-found'], options);
  if (object === undefined) return undefined;
  const metadata = isPlainObject(object.metadata) ? object.metadata : {};
  return { data: stringMap(object.data), annotations: stringMap(metadata.annotations), labels: stringMap(metadata.labels) };
}

async function list(resource: 'pods' | 'services', namespace: string, options: ReadOptions): Promise<NamedObject[]> {
  const objects: NamedObject[] = [];
  for (const item of await kubectlRawList(apiListPath('/api/v1', resource, { namespace }), options)) {
    if (!isPlainObject(item) || !isPlainObject(item.metadata) || typeof item.metadata.name !== 'string') continue;
    objects.push({ name: item.metadata.name, labels: stringMap(item.metadata.labels) });
  }
  return objects;
}

/** The forwarders' objects, each kind listed by its API path. */
const FORWARDER_LISTS = [
  ['ConfigMap', '/api/v1', 'configmaps'],
  ['ServiceAccount', '/api/v1', 'serviceaccounts'],
  ['Role', '/apis/rbac.authorization.k8s.io/v1', 'roles'],
  ['RoleBinding', '/apis/rbac.authorization.k8s.io/v1', 'rolebindings'],
] as const;

/**
 * The forwarders' ConfigMaps, ServiceAccounts, Roles and RoleBindings: those with the controller's
 * label, one call per kind (lists as the API server sends them; see kubectlRawList).
 */
export async function readForwarderObjects(namespace: string, options: ReadOptions): Promise<ObservedForwarderObjects> {
  const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const lists = await Promise.all(FORWARDER_LISTS.map(([, base, resource]) => kubectlRawList(apiListPath(base, resource, { namespace, labelSelector }), options)));
  const configMaps: ObservedForwarderConfigMap[] = [];
  const serviceAccounts: NamedObject[] = [];
  const roles: ObservedRole[] = [];
  const roleBindings: NamedObject[] = [];
  for (const [index, items] of lists.entries()) {
    const kind = FORWARDER_LISTS[index]?.[0];
    for (const item of items) {
      if (!isPlainObject(item) || !isPlainObject(item.metadata) || typeof item.metadata.name !== 'string') continue;
      const named = { name: item.metadata.name, labels: stringMap(item.metadata.labels) };
      if (kind === 'ConfigMap') configMaps.push({ ...named, data: stringMap(item.data), annotations: stringMap(item.metadata.annotations) });
      else if (kind === 'ServiceAccount') serviceAccounts.push(named);
      else if (kind === 'Role') roles.push({ ...named, rules: item.rules });
      else if (kind === 'RoleBinding') roleBindings.push(named);
    }
  }
  return { configMaps, serviceAccounts, roles, roleBindings };
}
