import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, errorMessage, quote } from './errors.js';
import { fileKind, INPUT_LIMITS, readInputFile } from './input-file.js';
import { unknownFields } from './known-fields.js';
import { parsePort, unicastIPv4Problem } from './ipv4.js';
import { MAX_BLOCK_LINES } from './rules.js';
import { isPlainObject, parseYaml } from './yaml.js';

/**
 * The ExternalService API (one YAML file per object in CONF_DIR): loading, listing and
 * validation. Every problem is a ConfigError naming the file and the field path.
 */

export const EXTERNAL_SERVICE_KIND = 'ExternalService';

export interface ServiceRef {
  namespace: string;
  name: string;
}

export interface ExternalServiceSource {
  service: ServiceRef;
  sourceIP: string;
  /** false: only the pods -> targetIP direction (no -R tunnel, no gateway rules). Default true. */
  bidirectional: boolean;
}

export interface ExternalServicePort {
  protocol: 'TCP';
  port: number;
  /** Defaults to `port`, as in a Kubernetes Service. */
  targetPort: number;
  name?: string;
}

export interface ExternalService {
  name: string;
  targetIP: string;
  sources: ExternalServiceSource[];
  ports: ExternalServicePort[];
}

export interface LoadedExternalService extends ExternalService {
  /** The conf file it came from (CONF_DIR joined with the entry name). */
  file: string;
}

export interface ParsedExternalService {
  /** Present only when the file has no error. */
  service: LoadedExternalService | undefined;
  errors: ConfigError[];
  warnings: string[];
  /** Fields the ExternalService API does not have (typos): ignored, and reported. */
  unknownFields: ConfigError[];
}

export interface LoadResult {
  /** The valid files' ExternalServices, in conf file order. */
  services: LoadedExternalService[];
  /** Every problem of every invalid file (a file with any error is left out of `services`). */
  errors: ConfigError[];
  warnings: string[];
  unknownFields: ConfigError[];
  /** Why each entry of the conf directory that is not a conf file was skipped. */
  skipped: ConfigError[];
}

/** The conf files of a directory, and why each other entry was skipped. */
export interface ConfDirListing {
  files: string[];
  skipped: ConfigError[];
}

/** Problems reported per file; a file with thousands of bad entries gets a count for the rest. */
export const MAX_PROBLEMS_PER_FILE = 20;

const CONF_FILE_SUFFIX = /\.ya?ml$/;
/** A Service name (the ExternalService name names the forwarder's Service too). */
const DNS1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A namespace name. */
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A Service port name (IANA_SVC_NAME). */
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;

/** A value for a message: scalars as JSON (long ones cut short), collections by their kind. */
function show(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (isPlainObject(value)) return 'a mapping';
  return quote(value);
}

/**
 * The conf files of a directory: entries directly in it whose names end in .yaml or .yml and do
 * not start with '.', that are regular files or symlinks to regular files, sorted by name. Every
 * other entry is skipped with the reason, except the `..`-prefixed entries a ConfigMap volume
 * keeps its data in.
 */
export async function listConfFiles(confDir: string): Promise<ConfDirListing> {
  let names: string[];
  try {
    names = await fs.readdir(confDir);
  } catch (error) {
    throw new ConfigError(confDir, undefined, `cannot read the conf directory: ${errorMessage(error)}`);
  }
  const listing: ConfDirListing = { files: [], skipped: [] };
  const skip = (name: string, reason: string): void => {
    listing.skipped.push(new ConfigError(path.join(confDir, quote(name)), undefined, `skipped: ${reason}`));
  };
  for (const name of names.sort(compareNames)) {
    if (name.startsWith('..')) continue;
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(name)) skip(name, 'its name has a control character');
    else if (name.startsWith('.')) skip(name, "its name starts with '.'");
    else if (!CONF_FILE_SUFFIX.test(name)) skip(name, 'not a .yaml or .yml file');
    else {
      const file = path.join(confDir, name);
      try {
        const stats = await fs.stat(file);
        if (stats.isFile()) listing.files.push(file);
        else skip(name, `it is ${fileKind(stats)}, not a regular file`);
      } catch (error) {
        skip(name, (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'a symlink to nothing' : `cannot read: ${errorMessage(error)}`);
      }
    }
  }
  return listing;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Reads and validates every conf file of a directory; names are unique across files. */
export async function loadExternalServices(confDir: string): Promise<LoadResult> {
  const listing = await listConfFiles(confDir);
  const result: LoadResult = { services: [], errors: [], warnings: [], unknownFields: [], skipped: listing.skipped };
  const fileOfName = new Map<string, string>();
  for (const file of listing.files) {
    let text: string;
    try {
      text = readInputFile(file, INPUT_LIMITS.confFile);
    } catch (error) {
      result.errors.push(error instanceof ConfigError ? error : new ConfigError(file, undefined, `cannot read: ${errorMessage(error)}`));
      continue;
    }
    const parsed = parseExternalService(text, file);
    for (const warning of parsed.warnings) result.warnings.push(warning);
    for (const error of parsed.errors) result.errors.push(error);
    for (const unknown of parsed.unknownFields) result.unknownFields.push(unknown);
    const service = parsed.service;
    if (!service) continue;
    const previous = fileOfName.get(service.name);
    if (previous !== undefined) {
      result.errors.push(new ConfigError(file, 'metadata.name', `${show(service.name)} is already used by ${previous}`));
      continue;
    }
    fileOfName.set(service.name, file);
    result.services.push(service);
  }
  return result;
}

/**
 * Parses one conf file's text; collects every problem instead of stopping at the first. Never
 * throws: whatever goes wrong is a problem of this file, and the other files are unaffected.
 */
export function parseExternalService(text: string, file: string): ParsedExternalService {
  let parsed: ParsedExternalService;
  try {
    parsed = checkExternalService(text, file);
  } catch (error) {
    return { service: undefined, errors: [new ConfigError(file, undefined, `cannot be checked: ${errorMessage(error)}`)], warnings: [], unknownFields: [] };
  }
  return { ...parsed, errors: capped(parsed.errors, file, 'problem'), unknownFields: capped(parsed.unknownFields, file, 'unknown field') };
}

/** The first MAX_PROBLEMS_PER_FILE of a file's problems, and a count of the rest. */
function capped(problems: ConfigError[], file: string, what: string): ConfigError[] {
  if (problems.length <= MAX_PROBLEMS_PER_FILE) return problems;
  const more = problems.length - MAX_PROBLEMS_PER_FILE;
  return [...problems.slice(0, MAX_PROBLEMS_PER_FILE), new ConfigError(file, undefined, `and ${more} more ${what}(s)`)];
}

function checkExternalService(text: string, file: string): ParsedExternalService {
  const errors: ConfigError[] = [];
  const warnings: string[] = [];
  let unknown: ConfigError[] = [];
  const fail = (field: string | undefined, reason: string): undefined => {
    errors.push(new ConfigError(file, field, reason));
    return undefined;
  };
  const done = (service?: LoadedExternalService): ParsedExternalService => ({
    service: errors.length === 0 ? service : undefined,
    errors,
    warnings,
    unknownFields: unknown,
  });

  if (!hasContent(text)) {
    fail(undefined, 'file is empty');
    return done();
  }
  let data: unknown;
  try {
    data = parseYaml(text, file);
  } catch (error) {
    if (error instanceof ConfigError) errors.push(error);
    else fail(undefined, errorMessage(error));
    return done();
  }
  if (data === null || data === undefined) {
    fail(undefined, 'file is empty');
    return done();
  }
  if (!isPlainObject(data)) {
    fail(undefined, 'must be a mapping (an ExternalService object)');
    return done();
  }
  unknown = unknownFields(data, file);
  if (data.kind !== EXTERNAL_SERVICE_KIND) {
    fail('kind', data.kind === undefined ? `is missing (must be ${EXTERNAL_SERVICE_KIND})` : `${show(data.kind)} is not ${EXTERNAL_SERVICE_KIND}`);
  }

  const name = readName(data.metadata, fail);
  const spec = data.spec;
  if (!isPlainObject(spec)) {
    fail('spec', spec === undefined ? 'is missing' : 'must be a mapping');
    return done();
  }
  const targetIP = readIPv4(spec.targetIP, 'spec.targetIP', fail);
  const sources = readSources(spec.sources, file, fail, warnings);
  const ports = readPorts(spec.ports, fail);
  if (name === undefined || targetIP === undefined || sources === undefined || ports === undefined) return done();
  if (sources.length * ports.length > MAX_BLOCK_LINES) {
    fail('spec', `${sources.length} sources x ${ports.length} ports are ${sources.length * ports.length} tunnels, more than the ${MAX_BLOCK_LINES} one forwarder may hold`);
  }
  return done({ file, name, targetIP, sources, ports });
}

/** False for a file of only blank lines, comments and document markers. */
function hasContent(text: string): boolean {
  return text.split('\n').some((line) => {
    const trimmed = line.trim();
    return trimmed !== '' && !trimmed.startsWith('#') && trimmed !== '---' && trimmed !== '...';
  });
}

type Fail = (field: string | undefined, reason: string) => undefined;

function readName(metadata: unknown, fail: Fail): string | undefined {
  if (!isPlainObject(metadata)) return fail('metadata', metadata === undefined ? 'is missing' : 'must be a mapping');
  const name = metadata.name;
  if (name === undefined || name === null || name === '') return fail('metadata.name', 'is missing');
  if (typeof name !== 'string' || !DNS1035_LABEL.test(name)) {
    return fail(
      'metadata.name',
      `${show(name)} is not a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters)`,
    );
  }
  return name;
}

function readIPv4(value: unknown, field: string, fail: Fail): string | undefined {
  if (value === undefined || value === null || value === '') return fail(field, 'is missing');
  const problem = unicastIPv4Problem(value);
  if (problem !== undefined) return fail(field, `${show(value)} ${problem}`);
  return value as string;
}

/** The mappings of an optional list, each with its field name; undefined (reported) when it is not a list. */
function listOfMappings(value: unknown, listField: string, what: string, fail: Fail): { entries: { item: Record<string, unknown>; field: string; index: number }[]; valid: boolean } | undefined {
  if (value === undefined || value === null) return { entries: [], valid: true };
  if (!Array.isArray(value)) return fail(listField, 'must be a list');
  const entries: { item: Record<string, unknown>; field: string; index: number }[] = [];
  let valid = true;
  value.forEach((item: unknown, index) => {
    const field = `${listField}[${index}]`;
    if (isPlainObject(item)) entries.push({ item, field, index });
    else valid = fail(field, `must be a mapping with ${what}`) ?? false;
  });
  return { entries, valid };
}

function readSources(value: unknown, file: string, fail: Fail, warnings: string[]): ExternalServiceSource[] | undefined {
  const list = listOfMappings(value, 'spec.sources', 'service and sourceIP', fail);
  if (list === undefined) return undefined;
  const sources: ExternalServiceSource[] = [];
  let valid = list.valid;
  for (const { item, field } of list.entries) {
    const hasService = item.service !== undefined && item.service !== null;
    const hasSourceIP = item.sourceIP !== undefined && item.sourceIP !== null;
    const service = hasService ? readServiceRef(item.service, `${field}.service`, fail) : undefined;
    const sourceIP = hasSourceIP ? readIPv4(item.sourceIP, `${field}.sourceIP`, fail) : undefined;
    const bidirectional = readBidirectional(item.bidirectional, `${field}.bidirectional`, fail);
    if ((hasService && !service) || (hasSourceIP && !sourceIP) || bidirectional === undefined) {
      valid = false;
      continue;
    }
    if (!service || !sourceIP) {
      warnings.push(`${file}: ${field}: skipped: it has no ${service ? 'sourceIP' : 'service'}`);
      continue;
    }
    sources.push({ service, sourceIP, bidirectional });
  }
  return valid ? sources : undefined;
}

function readServiceRef(value: unknown, field: string, fail: Fail): ServiceRef | undefined {
  if (!isPlainObject(value)) return fail(field, 'must be a mapping with namespace and name');
  const { namespace, name } = value;
  let valid = true;
  if (namespace === undefined || namespace === null || namespace === '') valid = fail(`${field}.namespace`, 'is missing') ?? false;
  else if (typeof namespace !== 'string' || !DNS1123_LABEL.test(namespace)) {
    valid = fail(`${field}.namespace`, `${show(namespace)} is not a namespace name (DNS-1123 label)`) ?? false;
  }
  if (name === undefined || name === null || name === '') valid = fail(`${field}.name`, 'is missing') ?? false;
  else if (typeof name !== 'string' || !DNS1035_LABEL.test(name)) {
    valid = fail(`${field}.name`, `${show(name)} is not a Service name (DNS-1035 label)`) ?? false;
  }
  return valid ? { namespace: namespace as string, name: name as string } : undefined;
}

function readBidirectional(value: unknown, field: string, fail: Fail): boolean | undefined {
  if (value === undefined || value === null) return true;
  if (typeof value !== 'boolean') return fail(field, `${show(value)} is not true or false`);
  return value;
}

function readPorts(value: unknown, fail: Fail): ExternalServicePort[] | undefined {
  const list = listOfMappings(value, 'spec.ports', 'port and targetPort', fail);
  if (list === undefined) return undefined;
  const ports: ExternalServicePort[] = [];
  const seenPorts = new Map<number, number>();
  const seenNames = new Map<string, number>();
  let valid = list.valid;
  for (const { item, field, index } of list.entries) {
    const protocol = item.protocol ?? 'TCP';
    if (protocol !== 'TCP') valid = fail(`${field}.protocol`, `${show(protocol)} is not supported (only TCP)`) ?? false;
    const port = readPort(item.port, `${field}.port`, fail);
    const targetPort = item.targetPort === undefined || item.targetPort === null ? port : readPort(item.targetPort, `${field}.targetPort`, fail);
    let name: string | undefined;
    if (item.name !== undefined && item.name !== null) {
      if (typeof item.name !== 'string' || !PORT_NAME.test(item.name)) {
        valid =
          fail(`${field}.name`, `${show(item.name)} is not a port name (lowercase letters, digits and '-', at most 15 characters, with a letter)`) ??
          false;
      } else {
        name = item.name;
        const other = seenNames.get(name);
        if (other !== undefined) valid = fail(`${field}.name`, `${show(name)} is also the name of spec.ports[${other}]`) ?? false;
        seenNames.set(name, index);
      }
    }
    if (port === undefined || targetPort === undefined) {
      valid = false;
      continue;
    }
    const other = seenPorts.get(port);
    if (other !== undefined) valid = fail(`${field}.port`, `${port} is also the port of spec.ports[${other}]`) ?? false;
    seenPorts.set(port, index);
    ports.push(name === undefined ? { protocol: 'TCP', port, targetPort } : { protocol: 'TCP', port, targetPort, name });
  }
  return valid ? ports : undefined;
}

function readPort(value: unknown, field: string, fail: Fail): number | undefined {
  if (value === undefined || value === null || value === '') return fail(field, 'is missing');
  const port = parsePort(value);
  if (port === undefined) return fail(field, `${show(value)} is not a port number (1..65535)`);
  return port;
}
