import { createHash } from 'node:crypto';
import type { ExternalService, ExternalServicePort } from '../lib/externalservice.js';
import type { ObjectSettings } from './settings.js';

/**
 * The Kubernetes objects the controller creates, built as data (sent to kubectl as JSON on
 * stdin; no name is ever pasted into YAML or a command line's text).
 */

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'k8s-ext-connector';
export const EXTERNAL_SERVICE_LABEL = 'externalService';
/** JSON {host: sha256 of the rules that host last received}. */
export const DELIVERED_ANNOTATION = 'k8s-ext-connector/delivered-sha256';
/**
 * JSON {conf file name: its text}: the last valid version of a conf file, on the forwarder
 * ConfigMap of the ExternalService it defines (the rules ConfigMap held every file's, up to 0.1).
 */
export const LAST_VALID_ANNOTATION = 'k8s-ext-connector/last-valid-conf';
/** sha256 of the pod spec the controller made: a forwarder pod made from another spec is made again. */
export const POD_SPEC_ANNOTATION = 'k8s-ext-connector/pod-spec-sha256';

export const DATA_DIR = '/etc/external-service/config';
export const SSH_KEY_DIR = '/etc/ssh-key';

export interface ObjectMetadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export type KubeObject = Record<string, unknown> & { kind: string; metadata: ObjectMetadata };

export function managedLabels(name?: string): Record<string, string> {
  return name === undefined ? { [MANAGED_BY_LABEL]: MANAGED_BY } : { [EXTERNAL_SERVICE_LABEL]: name, [MANAGED_BY_LABEL]: MANAGED_BY };
}

export function isManaged(labels: Record<string, string>): boolean {
  return labels[MANAGED_BY_LABEL] === MANAGED_BY;
}

export function namespaceObject(namespace: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: managedLabels() } };
}

export interface PodSettings extends ObjectSettings {
  image: string;
}

/**
 * The objects of one ExternalService's forwarder besides its pod and Service: its own ConfigMap
 * (only its rules, so that no object grows with the number of ExternalServices), and the
 * ServiceAccount, Role and RoleBinding that let the pod watch that one ConfigMap and nothing else.
 */
export function forwarderConfigMapName(name: string, settings: Pick<ObjectSettings, 'configMapName'>): string {
  return `${settings.configMapName}-${name}`;
}

/** The ServiceAccount, Role and RoleBinding of a forwarder share this name. */
export function forwarderAccountName(name: string): string {
  return `k8s-ext-forwarder-${name}`;
}

/** The forwarder pod of one ExternalService (controller.sh's create_fwd_pod, plus a managed-by label and its own rules). */
export function forwarderPod(name: string, settings: PodSettings): KubeObject {
  const configMap = forwarderConfigMapName(name, settings);
  const spec = {
    serviceAccountName: forwarderAccountName(name),
    containers: [
      {
        name: 'forwarder',
        image: settings.image,
        securityContext: { privileged: true },
        env: [
          { name: 'EXTERNAL_SERVICE_NAME', value: name },
          { name: 'DATA_FILE', value: `${DATA_DIR}/${settings.configMapKey}` },
          { name: 'RULES_CONFIGMAP', value: configMap },
          { name: 'RULES_CONFIGMAP_KEY', value: settings.configMapKey },
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        ],
        volumeMounts: [
          { name: 'data-file', mountPath: DATA_DIR },
          { name: 'ssh-key-volume', mountPath: SSH_KEY_DIR },
        ],
      },
    ],
    volumes: [
      { name: 'data-file', configMap: { name: configMap } },
      { name: 'ssh-key-volume', secret: { secretName: settings.secretName, defaultMode: 0o400 } },
    ],
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: settings.namespace, labels: managedLabels(name), annotations: { [POD_SPEC_ANNOTATION]: podSpecSha256(spec) } },
    spec,
  };
}

/** The API server fills in defaults, so a pod is compared by the sha256 of the spec it was created from. */
function podSpecSha256(spec: object): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}

export function forwarderServiceAccount(name: string, namespace: string): KubeObject {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: forwarderAccountName(name), namespace, labels: managedLabels(name) } };
}

/** The Role's one rule: read (and watch) the forwarder's own ConfigMap. */
export function forwarderRoleRules(name: string, settings: Pick<ObjectSettings, 'configMapName'>): Record<string, string[]>[] {
  return [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [forwarderConfigMapName(name, settings)], verbs: ['get', 'list', 'watch'] }];
}

export function forwarderRole(name: string, settings: ObjectSettings): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: forwarderAccountName(name), namespace: settings.namespace, labels: managedLabels(name) },
    rules: forwarderRoleRules(name, settings),
  };
}

export function forwarderRoleBinding(name: string, namespace: string): KubeObject {
  const account = forwarderAccountName(name);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: account, namespace, labels: managedLabels(name) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: account },
    subjects: [{ kind: 'ServiceAccount', name: account, namespace }],
  };
}

export interface ForwarderConfigMapContent {
  /** The rules document with only this forwarder's entry. */
  rules: string;
  /** {conf file name: last valid version} of the file that defines this ExternalService. */
  lastValid: Readonly<Record<string, string>>;
}

export function forwarderConfigMap(name: string, settings: ObjectSettings, content: ForwarderConfigMapContent): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: forwarderConfigMapName(name, settings),
      namespace: settings.namespace,
      labels: managedLabels(name),
      annotations: { [LAST_VALID_ANNOTATION]: stableJson(content.lastValid) },
    },
    data: { [settings.configMapKey]: content.rules },
  };
}

export interface DesiredServicePort {
  name?: string;
  protocol: string;
  port: number;
  targetPort: number;
}

/**
 * The Service ports of an ExternalService: its own list, with a name for each port when there
 * are several (the API requires names then): the given name, else `tcp-<port>`.
 */
export function servicePorts(ports: readonly ExternalServicePort[]): DesiredServicePort[] {
  const given = new Set(ports.map((port) => port.name).filter((name) => name !== undefined));
  return ports.map((port, index) => {
    const entry: DesiredServicePort = { protocol: port.protocol, port: port.port, targetPort: port.targetPort };
    let name = port.name;
    if (name === undefined && ports.length > 1) {
      name = `${port.protocol.toLowerCase()}-${port.port}`;
      if (given.has(name)) name = `port-${index}`;
    }
    return name === undefined ? entry : { name, ...entry };
  });
}

/** The forwarder Service of an ExternalService; clusterIP keeps an existing one's address on replace. */
export function forwarderService(service: Pick<ExternalService, 'name' | 'ports'>, namespace: string, clusterIP?: string): KubeObject {
  const spec: Record<string, unknown> = {
    selector: { [EXTERNAL_SERVICE_LABEL]: service.name },
    ports: servicePorts(service.ports),
  };
  if (clusterIP !== undefined) spec.clusterIP = clusterIP;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: service.name, namespace, labels: managedLabels(service.name) },
    spec,
  };
}

/**
 * The ConfigMap CONFIGMAP_NAME: what the controller remembers across cycles (which rules each
 * gateway host received), in annotations; keys others put in its data are kept.
 */
export function stateConfigMap(settings: ObjectSettings, content: { annotations: Record<string, string>; data: Record<string, string>; labels: Record<string, string> }): KubeObject {
  const metadata: ObjectMetadata = { name: settings.configMapName, namespace: settings.namespace, labels: { ...content.labels, ...managedLabels() } };
  if (Object.keys(content.annotations).length > 0) metadata.annotations = content.annotations;
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: content.data };
}

/** JSON with sorted keys, so that equal content is equal text (annotations are compared as text). */
export function stableJson(value: Record<string, string>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

/** Reads a JSON {string: string} annotation; anything else is treated as absent. */
export function parseStringMap(text: string | undefined): Record<string, string> {
  if (text === undefined) return {};
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
    return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  } catch {
    return {};
  }
}
