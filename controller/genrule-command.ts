import fs from 'node:fs/promises';
import path from 'node:path';
import { loadExternalServices } from '../lib/externalservice.js';
import type { Logger } from '../lib/log.js';
import { serializeRules } from '../lib/rules.js';
import { generateRules } from './genrule.js';
import { loadSnapshotFile, readClusterSnapshot, serializeSnapshot, type ClusterSnapshot } from './snapshot.js';

/** The actions of `controller genrule`, `validate` and `snapshot`. */

export interface SnapshotSourceOptions {
  namespace: string;
  /** A saved snapshot file instead of reading the cluster. */
  snapshot?: string | undefined;
}

export interface Output {
  write(text: string): unknown;
}

async function snapshotFrom(options: SnapshotSourceOptions, signal?: AbortSignal): Promise<ClusterSnapshot> {
  if (options.snapshot !== undefined) return loadSnapshotFile(options.snapshot);
  return readClusterSnapshot({ namespace: options.namespace, signal });
}

/** Prints the rules YAML; invalid files are reported and left out. */
export async function genruleCommand(confDir: string, options: SnapshotSourceOptions, log: Logger, stdout: Output): Promise<void> {
  const loaded = await loadExternalServices(confDir);
  for (const error of loaded.errors) log.error(`skipped invalid file: ${error.message}`);
  for (const warning of [...loaded.warnings, ...[...loaded.skipped, ...loaded.unknownFields].map((problem) => problem.message)]) log.warn(warning);
  const snapshot = await snapshotFrom(options);
  const { rules, warnings, errors } = generateRules(loaded.services, snapshot, { forwarderNamespace: options.namespace });
  for (const error of errors) log.error(`skipped: ${error.message}`);
  for (const warning of warnings) log.warn(warning);
  stdout.write(serializeRules(rules));
}

/**
 * Reports every problem of every conf file; returns false when there is any. With a snapshot it
 * also reports what the cluster is missing for the rules (as warnings: they do not fail it), and
 * the ExternalServices whose rules would be too large to write (errors). Unknown fields and
 * skipped directory entries are warnings, and errors with `strict`.
 */
export async function validateCommand(
  confDir: string,
  options: Partial<SnapshotSourceOptions> & { namespace: string; strict?: boolean },
  log: Logger,
): Promise<boolean> {
  const loaded = await loadExternalServices(confDir);
  let errors = loaded.errors;
  let leftOut = 0;
  for (const warning of loaded.warnings) log.warn(warning);
  if (options.strict === true) errors = errors.concat(loaded.skipped, loaded.unknownFields);
  else for (const problem of [...loaded.skipped, ...loaded.unknownFields]) log.warn(problem.message);
  if (options.snapshot !== undefined) {
    const snapshot = await loadSnapshotFile(options.snapshot);
    const generated = generateRules(loaded.services, snapshot, { forwarderNamespace: options.namespace });
    for (const warning of generated.warnings) log.warn(warning);
    errors = errors.concat(generated.errors);
    leftOut = generated.errors.length;
  }
  for (const error of errors) log.error(error.message);
  const summary = { valid: loaded.services.length - leftOut, invalid: new Set(errors.map((error) => error.file)).size, problems: errors.length };
  if (errors.length > 0) log.error('conf files have problems', summary);
  else log.info('conf files are valid', summary);
  return errors.length === 0;
}

/** Reads the cluster once and writes the snapshot as JSON (to a file atomically, or to stdout). */
export async function snapshotCommand(options: { namespace: string; output?: string | undefined }, log: Logger, stdout: Output): Promise<void> {
  const snapshot = await readClusterSnapshot({ namespace: options.namespace });
  const text = serializeSnapshot(snapshot);
  if (options.output === undefined || options.output === '-') {
    stdout.write(text);
    return;
  }
  const temporary = path.join(path.dirname(options.output), `.${path.basename(options.output)}.tmp-${process.pid}`);
  await fs.writeFile(temporary, text);
  await fs.rename(temporary, options.output);
  log.info('snapshot saved', {
    file: options.output,
    pods: snapshot.pods.length,
    services: snapshot.services.length,
    endpoints: snapshot.endpoints.length,
  });
}
