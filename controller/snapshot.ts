import { ConfigError, errorMessage, OutputError } from '../lib/errors.js';
import { run } from '../lib/exec.js';
import { INPUT_LIMITS, readInputFile } from '../lib/input-file.js';
import { isPlainObject } from '../lib/yaml.js';
import { POD_SPEC_ANNOTATION } from './objects.js';

/**
 * What the controller knows of the cluster in one cycle, read with a constant number of kubectl
 * calls whatever the number of ExternalServices. genrule is a pure function of (conf, snapshot).
 */

/** The string maps of an object's metadata. */
export interface ObjectMaps {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface PodInfo {
  namespace: string;
  name: string;
  /** status.podIP; undefined while the pod has none (kubectl's `<none>`). */
  podIP: string | undefined;
  labels: Record<string, string>;
  /** The sha256 of the spec the controller made the pod from (its annotation), for forwarder pods. */
  specSha256?: string | undefined;
}

export interface ServicePortInfo {
  name: string | undefined;
  protocol: string;
  port: number;
  targetPort: number | string | undefined;
}

export interface ServiceInfo extends ObjectMaps {
  namespace: string;
  name: string;
  /** ClusterIP, NodePort, LoadBalancer or ExternalName. */
  type: string;
  /** spec.clusterIP; undefined when absent, "None" for headless services. */
  clusterIP: string | undefined;
  ports: ServicePortInfo[];
  selector: Record<string, string>;
}

/**
 * The ready addresses of one service: from all its EndpointSlices, the addresses of every
 * endpoint whose `conditions.ready` is not false, each once, in address order. (Snapshots saved
 * by earlier versions read them from v1 Endpoints' `subsets[*].addresses`: the same meaning and
 * shape, so they keep working.)
 */
export interface EndpointsInfo {
  namespace: string;
  /** The service's name. */
  name: string;
  readyIPs: string[];
}

export interface ClusterSnapshot {
  /** Pods of the forwarder namespace. */
  pods: PodInfo[];
  /** Services of all namespaces. */
  services: ServiceInfo[];
  /** Ready addresses of the services of all namespaces. */
  endpoints: EndpointsInfo[];
}

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export const SNAPSHOT_VERSION = 1;

export interface ReadSnapshotOptions {
  /** The forwarder namespace: its pods are read. */
  namespace: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * Reads the cluster with three kubectl calls (the forwarder namespace's pods, all services, all
 * services' EndpointSlices), whatever the number of ExternalServices. A failing read throws
 * (CommandError), so that a cycle never works from a partial picture.
 */
export async function readClusterSnapshot(options: ReadSnapshotOptions): Promise<ClusterSnapshot> {
  const get = (path: string): Promise<unknown[]> => kubectlRawList(path, options);
  const [pods, services, endpointSlices] = await Promise.all([
    get(apiListPath('/api/v1', 'pods', { namespace: options.namespace })),
    get(apiListPath('/api/v1', 'services')),
    get(apiListPath('/apis/discovery.k8s.io/v1', 'endpointslices', { labelSelector: SERVICE_NAME_LABEL })),
  ]);
  return snapshotFromObjects({ pods, services, endpointSlices });
}

/**
 * The API path of a list: `BASE[/namespaces/NS]/RESOURCE[?labelSelector=...]` (BASE `/api/v1`
 * or `/apis/GROUP/VERSION`).
 */
export function apiListPath(base: string, resource: string, options: { namespace?: string; labelSelector?: string } = {}): string {
  const namespace = options.namespace === undefined ? '' : `/namespaces/${encodeURIComponent(options.namespace)}`;
  const query = options.labelSelector === undefined ? '' : `?labelSelector=${encodeURIComponent(options.labelSelector)}`;
  return `${base}${namespace}/${resource}${query}`;
}

/**
 * The `items` of `kubectl get --raw PATH`: the API server's own JSON of a list, in one response,
 * which kubectl passes on as it is. `kubectl get -o json` decodes every object, converts it and
 * prints it again, in chunks of 500: at thousands of objects that took seconds per list, --raw
 * a tenth of a second. The items carry no kind (the list's kind names it).
 */
export async function kubectlRawList(path: string, options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined }): Promise<unknown[]> {
  const argv = ['get', '--raw', path];
  const result = await run('kubectl', argv, { signal: options.signal, timeoutMs: options.timeoutMs });
  const data = jsonObject(result.stdout);
  if (!data || !Array.isArray(data.items)) throw new OutputError(`kubectl ${argv.join(' ')}: output is not a list of objects`);
  return data.items;
}

/** `text` as a JSON object, or undefined when it is not one (not JSON, or another JSON value). */
function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const data: unknown = JSON.parse(text);
    return isPlainObject(data) ? data : undefined;
  } catch {
    return undefined;
  }
}

/** The snapshot of kubectl's JSON objects (the `items` of each list). */
export function snapshotFromObjects(objects: { pods: unknown[]; services: unknown[]; endpointSlices: unknown[] }): ClusterSnapshot {
  return {
    pods: objects.pods.map(podFromObject).filter((pod) => pod !== undefined),
    services: objects.services.map(serviceFromObject).filter((service) => service !== undefined),
    endpoints: endpointsFromSlices(objects.endpointSlices),
  };
}

/**
 * `kubectl get ARGS -o json` as an object (undefined when `--ignore-not-found` printed nothing).
 * Output that is not a JSON object is an OutputError: kubectl's, not the user's, fault.
 */
export async function kubectlGetJson(args: readonly string[], options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined }): Promise<Record<string, unknown> | undefined> {
  const argv = ['get', ...args, '-o', 'json'];
  const result = await run('kubectl', argv, { signal: options.signal, timeoutMs: options.timeoutMs });
  if (result.stdout.trim() === '' && args.includes('--ignore-not-found')) return undefined;
  const data = jsonObject(result.stdout);
  if (!data) throw new OutputError(`kubectl ${argv.join(' ')}: output is not a JSON object`);
  return data;
}

export function stringMap(value: unknown): Record<string, string> {
  if (!isPlainObject(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function metadataOf(object: unknown): { namespace: string; name: string; labels: Record<string, string>; annotations: Record<string, string> } | undefined {
  if (!isPlainObject(object) || !isPlainObject(object.metadata)) return undefined;
  const { name, namespace, labels, annotations } = object.metadata;
  if (typeof name !== 'string') return undefined;
  return { name, namespace: typeof namespace === 'string' ? namespace : 'default', labels: stringMap(labels), annotations: stringMap(annotations) };
}

function podFromObject(object: unknown): PodInfo | undefined {
  const metadata = metadataOf(object);
  if (!metadata || !isPlainObject(object)) return undefined;
  const status = isPlainObject(object.status) ? object.status : {};
  const pod: PodInfo = { namespace: metadata.namespace, name: metadata.name, podIP: optionalString(status.podIP), labels: metadata.labels };
  const specSha256 = metadata.annotations[POD_SPEC_ANNOTATION];
  if (specSha256 !== undefined) pod.specSha256 = specSha256;
  return pod;
}

function serviceFromObject(object: unknown): ServiceInfo | undefined {
  const metadata = metadataOf(object);
  if (!metadata || !isPlainObject(object)) return undefined;
  const spec = isPlainObject(object.spec) ? object.spec : {};
  const ports: ServicePortInfo[] = [];
  for (const port of Array.isArray(spec.ports) ? spec.ports : []) {
    // As genrule.py: every entry that has a port, whatever its protocol.
    if (!isPlainObject(port) || typeof port.port !== 'number') continue;
    ports.push({
      name: optionalString(port.name),
      protocol: optionalString(port.protocol) ?? 'TCP',
      port: port.port,
      targetPort: typeof port.targetPort === 'number' || typeof port.targetPort === 'string' ? port.targetPort : undefined,
    });
  }
  return {
    namespace: metadata.namespace,
    name: metadata.name,
    type: optionalString(spec.type) ?? 'ClusterIP',
    clusterIP: optionalString(spec.clusterIP),
    ports,
    selector: stringMap(spec.selector),
    labels: metadata.labels,
    annotations: metadata.annotations,
  };
}

/** a.localeCompare(b, 'en', { numeric: true }), with one collator instead of one per call. */
const byAddress = new Intl.Collator('en', { numeric: true }).compare;

/** Each service's ready addresses, gathered from all of its EndpointSlices. */
function endpointsFromSlices(slices: readonly unknown[]): EndpointsInfo[] {
  const byService = new Map<string, EndpointsInfo>();
  for (const slice of slices) {
    const metadata = metadataOf(slice);
    const service = metadata?.labels[SERVICE_NAME_LABEL];
    if (!metadata || service === undefined || service === '' || !isPlainObject(slice)) continue;
    const key = `${metadata.namespace}/${service}`;
    let entry = byService.get(key);
    if (!entry) byService.set(key, (entry = { namespace: metadata.namespace, name: service, readyIPs: [] }));
    for (const endpoint of Array.isArray(slice.endpoints) ? slice.endpoints : []) {
      if (!isPlainObject(endpoint) || !Array.isArray(endpoint.addresses)) continue;
      // A missing ready condition means ready (the API's own reading).
      if (isPlainObject(endpoint.conditions) && endpoint.conditions.ready === false) continue;
      for (const address of endpoint.addresses) {
        if (typeof address === 'string' && address !== '' && !entry.readyIPs.includes(address)) entry.readyIPs.push(address);
      }
    }
  }
  return [...byService.values()].map((entry) => ({ ...entry, readyIPs: entry.readyIPs.sort(byAddress) }));
}

/** A snapshot as a file: JSON with a version, for `genrule --snapshot FILE`. */
export function serializeSnapshot(snapshot: ClusterSnapshot): string {
  return `${JSON.stringify({ version: SNAPSHOT_VERSION, ...snapshot }, null, 2)}\n`;
}

/** Parses and checks a snapshot file; anything malformed is a ConfigError naming the field. */
export function parseSnapshot(text: string, file: string): ClusterSnapshot {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(file, undefined, `not a JSON snapshot: ${errorMessage(error)}`);
  }
  const check = new FieldChecker(file);
  const root = check.object(data, undefined);
  if (root.version !== SNAPSHOT_VERSION) {
    throw new ConfigError(file, 'version', `${JSON.stringify(root.version) ?? 'missing'} is not a supported snapshot version (${SNAPSHOT_VERSION})`);
  }
  const pods = check.objects(root.pods, 'pods', (pod, field): PodInfo => {
    return {
      ...check.named(pod, field),
      podIP: check.optionalString(pod.podIP, `${field}.podIP`),
      labels: check.stringMap(pod.labels, `${field}.labels`),
    };
  });
  const services = check.objects(root.services, 'services', (service, field): ServiceInfo => {
    return {
      ...check.named(service, field),
      type: check.optionalString(service.type, `${field}.type`) ?? 'ClusterIP',
      clusterIP: check.optionalString(service.clusterIP, `${field}.clusterIP`),
      ports: check.objects(service.ports, `${field}.ports`, (port, portField): ServicePortInfo => {
        const targetPort = port.targetPort;
        if (targetPort !== undefined && typeof targetPort !== 'number' && typeof targetPort !== 'string') {
          throw new ConfigError(file, `${portField}.targetPort`, 'must be a number or a name');
        }
        return {
          name: check.optionalString(port.name, `${portField}.name`),
          protocol: check.optionalString(port.protocol, `${portField}.protocol`) ?? 'TCP',
          port: check.port(port.port, `${portField}.port`),
          targetPort,
        };
      }),
      selector: check.stringMap(service.selector, `${field}.selector`),
      labels: check.stringMap(service.labels, `${field}.labels`),
      annotations: check.stringMap(service.annotations, `${field}.annotations`),
    };
  });
  const endpoints = check.objects(root.endpoints, 'endpoints', (entry, field): EndpointsInfo => {
    return {
      ...check.named(entry, field),
      readyIPs: check.list(entry.readyIPs, `${field}.readyIPs`).map((ip, ipIndex) => check.string(ip, `${field}.readyIPs[${ipIndex}]`)),
    };
  });
  return { pods, services, endpoints };
}

export async function loadSnapshotFile(file: string): Promise<ClusterSnapshot> {
  return parseSnapshot(readInputFile(file, INPUT_LIMITS.snapshot), file);
}

class FieldChecker {
  constructor(private readonly file: string) {}

  private fail(field: string | undefined, reason: string): never {
    throw new ConfigError(this.file, field, reason);
  }

  object(value: unknown, field: string | undefined): Record<string, unknown> {
    if (!isPlainObject(value)) this.fail(field, 'must be an object');
    return value;
  }

  list(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, 'must be a list');
    return value;
  }

  /** The namespace and name every object of a snapshot has. */
  named(object: Record<string, unknown>, field: string): { namespace: string; name: string } {
    return { namespace: this.string(object.namespace, `${field}.namespace`), name: this.string(object.name, `${field}.name`) };
  }

  /** A list of objects, each read by `read` with its own field name (`field[index]`). */
  objects<T>(value: unknown, field: string, read: (object: Record<string, unknown>, itemField: string) => T): T[] {
    return this.list(value, field).map((item, index) => read(this.object(item, `${field}[${index}]`), `${field}[${index}]`));
  }

  string(value: unknown, field: string): string {
    if (typeof value !== 'string' || value === '') this.fail(field, 'must be a non-empty string');
    return value;
  }

  optionalString(value: unknown, field: string): string | undefined {
    if (value === undefined || value === null) return undefined;
    return this.string(value, field);
  }

  stringMap(value: unknown, field: string): Record<string, string> {
    if (value === undefined || value === null) return {};
    const object = this.object(value, field);
    for (const [key, entry] of Object.entries(object)) {
      if (typeof entry !== 'string') this.fail(`${field}.${key}`, 'must be a string');
    }
    return object as Record<string, string>;
  }

  port(value: unknown, field: string): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) this.fail(field, 'must be a port number (1..65535)');
    return value;
  }
}
