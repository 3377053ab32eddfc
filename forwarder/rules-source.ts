import { createHash } from 'node:crypto';
import { isPlainObject } from '../lib/yaml.js';

/**
 * Where the forwarder takes its rules from: its ConfigMap through the API (a watch, so a change
 * arrives at once) or the same ConfigMap mounted as a volume (DATA_FILE, which kubelet refreshes
 * only about once a minute). Pure decisions; forwarder/configmap-watch.ts runs the watch.
 *
 * The choice, each cycle:
 * - while the watch runs and has delivered the ConfigMap, the API's copy (it is the newest: the
 *   volume is written from the same object, later);
 * - when the watch is lost (the API cannot be reached), the last copy it delivered stays in force
 *   until the mounted file changes: a file written after that copy holds what kubelet read from
 *   the API later, so it is at least as new;
 * - without any copy from the API (no watch configured, the API unreachable since the start, the
 *   ConfigMap deleted), the mounted file.
 */

/** What the watch knows: whether it is live, and the last copy of the rules it delivered. */
export interface ApiRules {
  /** The watch runs and has delivered the ConfigMap since it (re)started. */
  live: boolean;
  /** The last copy delivered; undefined before the first one and after the ConfigMap was deleted. */
  copy?: ApiCopy | undefined;
}

export interface ApiCopy {
  /** The rules document under the key ('' when the ConfigMap lacks the key). */
  text: string;
  resourceVersion: string;
}

export type RulesChoice = { from: 'api'; copy: ApiCopy; live: boolean } | { from: 'file' };

/**
 * `fileAtLastApiUse` is the mounted file's fingerprint (see fileFingerprint) as it was in the last
 * cycle that used the API's copy; `file` is its fingerprint now.
 */
export function chooseRules(api: ApiRules | undefined, file: string, fileAtLastApiUse: string | undefined): RulesChoice {
  if (api?.copy === undefined) return { from: 'file' };
  if (api.live || file === fileAtLastApiUse) return { from: 'api', copy: api.copy, live: api.live };
  return { from: 'file' };
}

/** A short fingerprint of the mounted file's text, or of why it cannot be read. */
export function fileFingerprint(content: { text: string } | { error: string }): string {
  const input = 'text' in content ? `text\0${content.text}` : `error\0${content.error}`;
  return createHash('sha256').update(input).digest('hex');
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ConfigMapEvent {
  type: WatchEventType;
  resourceVersion: string;
  /** The rules under the key ('' when the ConfigMap lacks it). */
  text: string;
}

/**
 * One line of `kubectl get configmap NAME --watch --output-watch-events -o json` (one JSON event
 * per line). Anything else (a bookmark, an error status, a line that is not such an event) is
 * undefined: the watch only acts on ConfigMaps.
 */
export function parseWatchEvent(line: string, key: string): ConfigMapEvent | undefined {
  let event: unknown;
  try {
    event = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isPlainObject(event) || !['ADDED', 'MODIFIED', 'DELETED'].includes(event.type as string)) return undefined;
  const object = configMapCopy(event.object, key);
  return object === undefined ? undefined : { type: event.type as WatchEventType, ...object };
}

/** The copy of the rules in a ConfigMap object (from a watch event or `kubectl get -o json`). */
export function configMapCopy(object: unknown, key: string): ApiCopy | undefined {
  if (!isPlainObject(object) || object.kind !== 'ConfigMap' || !isPlainObject(object.metadata)) return undefined;
  const resourceVersion = object.metadata.resourceVersion;
  if (typeof resourceVersion !== 'string') return undefined;
  const value = isPlainObject(object.data) ? object.data[key] : undefined;
  return { resourceVersion, text: typeof value === 'string' ? value : '' };
}

/** The state after an event: a deletion drops the copy (the mounted file is used again). */
export function applyWatchEvent(event: ConfigMapEvent): ApiRules {
  if (event.type === 'DELETED') return { live: true };
  return { live: true, copy: { text: event.text, resourceVersion: event.resourceVersion } };
}

export interface ConfigMapTarget {
  name: string;
  key: string;
  /** The pod's namespace; undefined lets kubectl take the in-cluster namespace. */
  namespace: string | undefined;
}

/** What the rules of a copy are called in messages: `configmap NS/NAME key KEY`. */
export function describeTarget(target: ConfigMapTarget): string {
  return `configmap ${target.namespace === undefined ? '' : `${target.namespace}/`}${target.name} key ${target.key}`;
}

/** The kubectl arguments that read (or, with `watch`, watch) the ConfigMap. */
export function kubectlArgs(target: ConfigMapTarget, watch: boolean): string[] {
  return [
    'get',
    'configmap',
    target.name,
    ...(target.namespace === undefined ? [] : ['-n', target.namespace]),
    ...(watch ? ['--watch', '--output-watch-events'] : []),
    '-o',
    'json',
  ];
}
