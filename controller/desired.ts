import { createHash } from 'node:crypto';
import path from 'node:path';
import { ConfigError, errorMessage } from '../lib/errors.js';
import { INPUT_LIMITS, readInputFile } from '../lib/input-file.js';
import { listConfFiles, parseExternalService, type ExternalService, type LoadedExternalService } from '../lib/externalservice.js';
import { serializeRules, type RulesDocument } from '../lib/rules.js';
import { generateRules } from './genrule.js';
import type { ClusterSnapshot } from './snapshot.js';

/**
 * The desired state of one cycle. readConf reads the conf files; the rest are pure functions of
 * what was read: the conf files in force (each invalid file replaced by its last valid version
 * when one is known) and the rules they generate from the cycle's cluster snapshot.
 */

export interface ConfEntry {
  file: string;
  /** The file's text, or undefined when it could not be read. */
  text: string | undefined;
  /** Why it could not be read. */
  readError?: ConfigError;
}

export interface InvalidConf {
  file: string;
  errors: ConfigError[];
  /** The last valid version of the file is in force instead. */
  lastValidInForce: boolean;
}

export interface ResolvedConf {
  /** The ExternalServices in force, in conf file order. */
  services: LoadedExternalService[];
  /** What to remember as each file's last valid version (file name -> text). */
  lastValid: Record<string, string>;
  invalid: InvalidConf[];
  warnings: string[];
}

export interface ConfRead {
  entries: ConfEntry[];
  /** Why each other entry of CONF_DIR was skipped (warnings). */
  skipped: ConfigError[];
}

/**
 * Reads CONF_DIR's conf files (the entries listConfFiles selects: `.yaml`/`.yml`, no dotfiles,
 * regular files or symlinks to them, sorted); throws a ConfigError when the directory cannot be read.
 */
export async function readConf(confDir: string): Promise<ConfRead> {
  const { files, skipped } = await listConfFiles(confDir);
  const entries = files.map((file): ConfEntry => {
    try {
      return { file, text: readInputFile(file, INPUT_LIMITS.confFile) };
    } catch (error) {
      return { file, text: undefined, readError: error instanceof ConfigError ? error : new ConfigError(file, undefined, errorMessage(error)) };
    }
  });
  return { entries, skipped };
}

/**
 * Each entry's parse, kept with the entry: a cycle resolves the same entries twice (before and
 * after its reads), and a thousand conf files took a quarter of a second to parse.
 */
const parses = new WeakMap<ConfEntry, ReturnType<typeof parseExternalService>>();

function parsedEntry(entry: ConfEntry, text: string): ReturnType<typeof parseExternalService> {
  let parsed = parses.get(entry);
  if (parsed === undefined) parses.set(entry, (parsed = parseExternalService(text, entry.file)));
  return parsed;
}

/**
 * Picks the version of each conf file in force. A valid file is used as it is and remembered; an
 * invalid one (bad content, unreadable, or a name an earlier file already uses) is reported, and
 * its remembered last valid version stays in force if that is valid and its name is not taken by
 * a currently valid file.
 */
export function resolveConf(entries: readonly ConfEntry[], remembered: Readonly<Record<string, string>>): ResolvedConf {
  const warnings: string[] = [];
  const fileOfName = new Map<string, string>();
  const current = entries.map((entry) => {
    const errors: ConfigError[] = [];
    if (entry.text === undefined) {
      errors.push(entry.readError ?? new ConfigError(entry.file, undefined, 'cannot read'));
      return { entry, errors, service: undefined };
    }
    const parsed = parsedEntry(entry, entry.text);
    for (const warning of parsed.warnings) warnings.push(warning);
    for (const unknown of parsed.unknownFields) warnings.push(unknown.message);
    for (const error of parsed.errors) errors.push(error);
    let service = parsed.service;
    const owner = service && fileOfName.get(service.name);
    if (service && owner !== undefined) {
      errors.push(new ConfigError(entry.file, 'metadata.name', `${JSON.stringify(service.name)} is already used by ${owner}`));
      service = undefined;
    }
    if (service) fileOfName.set(service.name, entry.file);
    return { entry, errors, service };
  });

  const resolved: ResolvedConf = { services: [], lastValid: {}, invalid: [], warnings };
  for (const { entry, errors, service } of current) {
    const key = path.basename(entry.file);
    if (service && entry.text !== undefined) {
      resolved.services.push(service);
      resolved.lastValid[key] = rememberedForm(service);
      continue;
    }
    const previousText = remembered[key];
    const previous = previousText === undefined ? undefined : parseExternalService(previousText, entry.file).service;
    const usable = previousText !== undefined && previous !== undefined && !fileOfName.has(previous.name);
    if (usable) {
      resolved.services.push(previous);
      resolved.lastValid[key] = previousText;
      fileOfName.set(previous.name, entry.file);
    }
    resolved.invalid.push({ file: entry.file, errors, lastValidInForce: usable });
  }
  return resolved;
}

/**
 * What is remembered of a valid conf file: the ExternalService it defines as one line of flow YAML,
 * without comments, defaults or unknown fields, which the same parser reads back to the same
 * ExternalService (typically a fifth of the file, so that hundreds fit in one annotation). Every
 * string is quoted: a name such as `true` or `0123` would otherwise read back as a boolean or a number.
 */
/** A JSON string is a double-quoted YAML scalar: read back as the same string, whatever it holds. */
const quoted = (value: string): string => JSON.stringify(value);

export function rememberedForm(service: ExternalService): string {
  const sources = service.sources.map(
    (source) =>
      `{service: {namespace: ${quoted(source.service.namespace)}, name: ${quoted(source.service.name)}}, sourceIP: ${quoted(source.sourceIP)}${source.bidirectional ? '' : ', bidirectional: false'}}`,
  );
  const ports = service.ports.map(
    (port) => `{port: ${port.port}${port.targetPort === port.port ? '' : `, targetPort: ${port.targetPort}`}${port.name === undefined ? '' : `, name: ${JSON.stringify(port.name)}`}}`,
  );
  return `{kind: ExternalService, metadata: {name: ${quoted(service.name)}}, spec: {targetIP: ${quoted(service.targetIP)}, sources: [${sources.join(', ')}], ports: [${ports.join(', ')}]}}`;
}

export interface DesiredRules {
  /** What the gateways receive (see gatewayDocument). */
  gateway: { text: string; sha256: string };
  /** Each forwarder's own document (by ExternalService name): its entry only. */
  forwarders: Map<string, string>;
  warnings: string[];
  /** ExternalServices whose rules are left out because they would not fit (see MAX_BLOCK_LINES). */
  errors: ConfigError[];
}

/** The rules for the services in force: the whole document, and the part each reader needs. */
export function desiredRules(services: readonly LoadedExternalService[], snapshot: ClusterSnapshot, forwarderNamespace: string): DesiredRules {
  const { rules, warnings, errors } = generateRules(services, snapshot, { forwarderNamespace });
  const gateway = serializeRules(gatewayDocument(rules));
  const forwarders = new Map(services.map((service) => [service.name, serializeRules(forwarderDocument(rules, service.name))]));
  return { gateway: { text: gateway, sha256: sha256(gateway) }, forwarders, warnings, errors };
}

/** One forwarder's document: its own entry (none while it has no rules), no gateway section. */
export function forwarderDocument(rules: RulesDocument, name: string): RulesDocument {
  const entry = rules.forwarder[name];
  return { forwarder: entry === undefined ? {} : { [name]: entry }, gateway: {} };
}

/**
 * What a gateway needs: its sections, and the forwarders' tunnel lines (its sshds permit exactly
 * those); the forwarders' iptables rules stay out.
 */
export function gatewayDocument(rules: RulesDocument): RulesDocument {
  const forwarder = Object.fromEntries(Object.entries(rules.forwarder).map(([name, entry]) => [name, { ...entry, 'iptables-rule': '' }]));
  return { forwarder, gateway: rules.gateway };
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
