import path from 'node:path';
import { desiredRules, readConf, resolveConf, type ConfEntry } from './desired.js';
import { DELIVERED_ANNOTATION, isManaged, LAST_VALID_ANNOTATION, parseStringMap } from './objects.js';
import { observeCluster, type ObservedCluster } from './observe.js';
import { serviceDifference } from './plan.js';
import type { ObjectSettings } from './settings.js';

/**
 * `controller status CONF_DIR`: what is applied (objects, whether the ConfigMap and each gateway
 * hold the current rules) and what is wrong (invalid files, missing pods, ...). Read-only.
 */

export interface ExternalServiceStatus {
  name: string;
  file: string;
  /** The file is invalid and this is its last valid version. */
  fromLastValid: boolean;
  pod: string;
  service: string;
}

export interface StatusReport {
  confDir: string;
  confFiles: number;
  invalid: { file: string; errors: string[]; lastValidInForce: boolean }[];
  namespace: string;
  objects: { kind: string; name: string; state: string }[];
  externalServices: ExternalServiceStatus[];
  gateways: { host: string; state: string }[];
  leftovers: string[];
  warnings: string[];
  /** One line per thing that is wrong or not yet applied; empty when all is in place. */
  problems: string[];
}

export function buildStatus(
  confDir: string,
  entries: readonly ConfEntry[],
  observed: ObservedCluster,
  settings: ObjectSettings,
  gatewayHosts: readonly string[] | undefined,
): StatusReport {
  const annotations = observed.configMap?.annotations ?? {};
  const conf = resolveConf(entries, parseStringMap(annotations[LAST_VALID_ANNOTATION]));
  const rules = desiredRules(conf.services, observed.snapshot, settings.namespace);
  const problems: string[] = [];

  for (const invalid of conf.invalid) {
    problems.push(`invalid conf file ${invalid.file}${invalid.lastValidInForce ? ' (its last valid version is in force)' : ''}`);
  }

  const objects: StatusReport['objects'] = [];
  const exists = (kind: string, name: string, present: boolean): void => {
    objects.push({ kind, name, state: present ? 'present' : 'missing' });
    if (!present) problems.push(`${kind} ${name} is missing`);
  };
  exists('namespace', settings.namespace, observed.namespaceExists);
  exists('secret', settings.secretName, observed.secretExists);
  if (!observed.configMap) {
    exists('configmap', settings.configMapName, false);
  } else {
    const current = observed.configMap.data[settings.configMapKey] === rules.text;
    objects.push({ kind: 'configmap', name: settings.configMapName, state: current ? 'holds the current rules' : 'holds older rules' });
    if (!current) problems.push(`ConfigMap ${settings.configMapName} does not hold the current rules`);
  }

  const pods = new Map(observed.snapshot.pods.filter((pod) => pod.namespace === settings.namespace).map((pod) => [pod.name, pod]));
  const services = new Map(
    observed.snapshot.services.filter((service) => service.namespace === settings.namespace).map((service) => [service.name, service]),
  );
  const fallbackFiles = new Set(conf.invalid.filter((invalid) => invalid.lastValidInForce).map((invalid) => invalid.file));
  const externalServices = conf.services.map((service): ExternalServiceStatus => {
    const pod = pods.get(service.name);
    let podState: string;
    if (!pod) {
      podState = 'missing';
      problems.push(`forwarder pod ${service.name} is missing`);
    } else if (pod.podIP === undefined) {
      podState = 'no IP yet';
      problems.push(`forwarder pod ${service.name} has no IP yet`);
    } else {
      podState = `${pod.podIP}${isManaged(pod.labels) ? '' : ' (not created by this controller)'}`;
    }
    const existing = services.get(service.name);
    let serviceState: string;
    if (service.ports.length === 0) {
      serviceState = existing ? 'present, but the ExternalService has no ports' : 'none (no ports)';
      if (existing && isManaged(existing.labels)) problems.push(`service ${service.name} should be deleted (no ports)`);
    } else if (!existing) {
      serviceState = 'missing';
      problems.push(`service ${service.name} is missing`);
    } else {
      const difference = serviceDifference(service, existing);
      serviceState = difference === undefined ? `${existing.clusterIP ?? 'no cluster IP'}` : `outdated: ${difference}`;
      if (difference !== undefined) problems.push(`service ${service.name} is outdated: ${difference}`);
    }
    return { name: service.name, file: service.file, fromLastValid: fallbackFiles.has(service.file), pod: podState, service: serviceState };
  });

  const delivered = parseStringMap(annotations[DELIVERED_ANNOTATION]);
  const hosts = gatewayHosts ?? Object.keys(delivered).sort();
  const gateways = hosts.map((host) => {
    const sha = delivered[host];
    const state = sha === rules.sha256 ? 'holds the current rules' : sha === undefined ? 'has never received rules' : 'holds older rules';
    if (sha !== rules.sha256) problems.push(`gateway ${host} ${state}`);
    return { host, state };
  });
  if (hosts.length === 0) problems.push('no gateway host is known (set GATEWAY_NODE_IP)');

  const wanted = new Set(conf.services.map((service) => service.name));
  const leftovers = [
    ...[...pods.values()].filter((pod) => isManaged(pod.labels) && !wanted.has(pod.name)).map((pod) => `pod ${pod.name}`),
    ...[...services.values()].filter((service) => isManaged(service.labels) && !wanted.has(service.name)).map((service) => `service ${service.name}`),
  ].sort();
  for (const leftover of leftovers) problems.push(`${leftover} is left over (no ExternalService)`);

  return {
    confDir,
    confFiles: entries.length,
    invalid: conf.invalid.map((invalid) => ({ file: invalid.file, errors: invalid.errors.map((error) => error.message), lastValidInForce: invalid.lastValidInForce })),
    namespace: settings.namespace,
    objects,
    externalServices,
    gateways,
    leftovers,
    warnings: [...conf.warnings, ...rules.warnings],
    problems,
  };
}

export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  lines.push(`conf: ${report.confDir} (${report.confFiles} file(s), ${report.invalid.length} invalid)`);
  lines.push(`objects in namespace ${report.namespace}:`);
  for (const object of report.objects) lines.push(`  ${object.kind} ${object.name}: ${object.state}`);
  lines.push('external services:');
  if (report.externalServices.length === 0) lines.push('  (none)');
  for (const service of report.externalServices) {
    const origin = service.fromLastValid ? `${path.basename(service.file)}, last valid version` : path.basename(service.file);
    lines.push(`  ${service.name} (${origin}): pod ${service.pod}; service ${service.service}`);
  }
  lines.push('gateways:');
  if (report.gateways.length === 0) lines.push('  (none known)');
  for (const gateway of report.gateways) lines.push(`  ${gateway.host}: ${gateway.state}`);
  if (report.leftovers.length > 0) lines.push(`left over: ${report.leftovers.join(', ')}`);
  for (const invalid of report.invalid) {
    lines.push(`invalid: ${invalid.file}${invalid.lastValidInForce ? ' (last valid version in force)' : ''}`);
    for (const error of invalid.errors) lines.push(`  ${error}`);
  }
  for (const warning of report.warnings) lines.push(`warning: ${warning}`);
  lines.push(report.problems.length === 0 ? 'status: everything is applied' : `status: ${report.problems.length} problem(s)`);
  for (const problem of report.problems) lines.push(`  - ${problem}`);
  return `${lines.join('\n')}\n`;
}

/** Reads and prints the status; returns false when something is wrong or not yet applied. */
export async function runStatus(
  confDir: string,
  settings: ObjectSettings,
  gatewayHosts: readonly string[] | undefined,
  output: { write(text: string): unknown },
): Promise<boolean> {
  const entries = await readConf(confDir);
  const observed = await observeCluster(settings);
  const report = buildStatus(confDir, entries, observed, settings, gatewayHosts);
  output.write(formatStatus(report));
  return report.problems.length === 0;
}
