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
/** JSON {conf file name: its text}: the last valid version of every conf file. */
export const LAST_VALID_ANNOTATION = 'k8s-ext-connector/last-valid-conf';

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

/** The forwarder pod of one ExternalService (controller.sh's create_fwd_pod, plus a managed-by label). */
export function forwarderPod(name: string, settings: PodSettings): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: settings.namespace, labels: managedLabels(name) },
    spec: {
      containers: [
        {
          name: 'forwarder',
          image: settings.image,
          securityContext: { privileged: true },
          env: [
            { name: 'EXTERNAL_SERVICE_NAME', value: name },
            { name: 'DATA_FILE', value: `${DATA_DIR}/${settings.configMapKey}` },
          ],
          volumeMounts: [
            { name: 'data-file', mountPath: DATA_DIR },
            { name: 'ssh-key-volume', mountPath: SSH_KEY_DIR },
          ],
        },
      ],
      volumes: [
        { name: 'data-file', configMap: { name: settings.configMapName } },
        { name: 'ssh-key-volume', secret: { secretName: settings.secretName, defaultMode: 0o400 } },
      ],
    },
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

export interface RulesConfigMapContent {
  rules: string;
  annotations: Record<string, string>;
}

export function rulesConfigMap(settings: ObjectSettings, content: RulesConfigMapContent): KubeObject {
  const metadata: ObjectMetadata = { name: settings.configMapName, namespace: settings.namespace, labels: managedLabels() };
  if (Object.keys(content.annotations).length > 0) metadata.annotations = content.annotations;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata,
    data: { [settings.configMapKey]: content.rules },
  };
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
