import path from 'node:path';
import { EXIT, type ExitCode } from '../lib/cli.js';
import { desiredRules, readConf, resolveConf, type ConfEntry } from './desired.js';
import { DELIVERED_ANNOTATION, forwarderConfigMapName, isManaged, parseStringMap, type PodSettings } from './objects.js';
import { observeCluster, type ObservedCluster } from './observe.js';
import {
  configMapAfterInit,
  deliveredAfter,
  desiredForwarderConfigMaps,
  hostsLacking,
  planCycleObjects,
  planForwarderConfigMaps,
  planState,
  rememberedConf,
  serviceDifference,
} from './plan.js';

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
  /** Its ConfigMap holds the current rules, older ones, or is missing. */
  rules: 'current' | 'older' | 'missing';
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

/**
 * The problems are what the next cycle would do (the reasons of the actions plan() would take,
 * and the gateway hosts it would copy the rules to), plus the invalid conf files and the pods
 * still waiting for an IP; the rest of the report shows what is in place.
 */
export function buildStatus(
  confDir: string,
  entries: readonly ConfEntry[],
  observed: ObservedCluster,
  settings: PodSettings,
  gatewayHosts: readonly string[] | undefined,
): StatusReport {
  const conf = resolveConf(entries, rememberedConf(observed.configMap, observed.forwarderObjects.configMaps));
  const rules = desiredRules(conf.services, observed.snapshot, settings.namespace);
  const delivered = parseStringMap(observed.configMap?.annotations[DELIVERED_ANNOTATION]);
  const hosts = gatewayHosts ?? Object.keys(delivered).sort();
  const delivery = { hosts, delivered, rulesSha256: rules.gateway.sha256 };
  const forwarders = desiredForwarderConfigMaps(conf.services, rules.forwarders, conf.lastValid, settings);
  // Only the contents of the objects depend on the key file, not which actions are planned.
  const planned = [
    ...planCycleObjects(conf, observed, forwarders.configMaps, { ...settings, sshKeyPath: '' }),
    ...planForwarderConfigMaps(forwarders.configMaps, observed.forwarderObjects.configMaps, settings),
    ...planState({ delivered: deliveredAfter(delivery, new Set()), dropLegacy: true }, configMapAfterInit(observed.configMap), settings),
  ];
  const lacking = new Set(hostsLacking(hosts, delivered, rules.gateway.sha256));
  const configMaps = new Map(observed.forwarderObjects.configMaps.map((configMap) => [configMap.name, configMap]));

  const pods = new Map(observed.snapshot.pods.filter((pod) => pod.namespace === settings.namespace).map((pod) => [pod.name, pod]));
  const services = new Map(
    observed.snapshot.services.filter((service) => service.namespace === settings.namespace).map((service) => [service.name, service]),
  );
  const fallbackFiles = new Set(conf.invalid.filter((invalid) => invalid.lastValidInForce).map((invalid) => invalid.file));
  const externalServices = conf.services.map((service): ExternalServiceStatus => {
    const pod = pods.get(service.name);
    const podState = !pod ? 'missing' : pod.podIP === undefined ? 'no IP yet' : `${pod.podIP}${isManaged(pod.labels) ? '' : ' (not created by this controller)'}`;
    const configMap = configMaps.get(forwarderConfigMapName(service.name, settings));
    const rulesState = !configMap ? 'missing' : configMap.data[settings.configMapKey] === forwarders.configMaps.get(service.name)?.rules ? 'current' : 'older';
    const existing = services.get(service.name);
    const difference = existing && serviceDifference(service, existing);
    const serviceState =
      service.ports.length === 0
        ? existing ? 'present, but the ExternalService has no ports' : 'none (no ports)'
        : !existing ? 'missing' : difference === undefined ? `${existing.clusterIP ?? 'no cluster IP'}` : `outdated: ${difference}`;
    return { name: service.name, file: service.file, fromLastValid: fallbackFiles.has(service.file), pod: podState, service: serviceState, rules: rulesState };
  });

  const gateways = hosts.map((host) => ({
    host,
    state: !lacking.has(host) ? 'holds the current rules' : delivered[host] === undefined ? 'has never received rules' : 'holds older rules',
  }));
  const wanted = new Set(conf.services.map((service) => service.name));
  const leftovers = [
    ...[...pods.values()].filter((pod) => isManaged(pod.labels) && !wanted.has(pod.name)).map((pod) => `pod ${pod.name}`),
    ...[...services.values()].filter((service) => isManaged(service.labels) && !wanted.has(service.name)).map((service) => `service ${service.name}`),
  ].sort();

  const problems = [
    ...conf.invalid.map((invalid) => `invalid conf file ${invalid.file}${invalid.lastValidInForce ? ' (its last valid version is in force)' : ''}`),
    ...rules.errors.map((error) => error.message),
    ...forwarders.problems,
    ...planned.map((change) => change.reason),
    ...gateways.filter((gateway) => lacking.has(gateway.host)).map((gateway) => `gateway ${gateway.host} ${gateway.state}`),
    ...externalServices.filter((service) => service.pod === 'no IP yet').map((service) => `forwarder pod ${service.name} has no IP yet`),
    ...(hosts.length === 0 ? ['no gateway host is known (set GATEWAY_NODE_IP)'] : []),
  ];
  return {
    confDir,
    confFiles: entries.length,
    invalid: conf.invalid.map((invalid) => ({ file: invalid.file, errors: invalid.errors.map((error) => error.message), lastValidInForce: invalid.lastValidInForce })),
    namespace: settings.namespace,
    objects: [
      { kind: 'namespace', name: settings.namespace, state: observed.namespaceExists ? 'present' : 'missing' },
      { kind: 'secret', name: settings.secretName, state: observed.secretExists ? 'present' : 'missing' },
      { kind: 'configmap', name: settings.configMapName, state: observed.configMap ? 'present' : 'missing' },
    ],
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
    lines.push(`  ${service.name} (${origin}): pod ${service.pod}; service ${service.service}; rules ${service.rules}`);
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

/** Reads and prints the status; the exit code is 2 when a conf file is invalid, else 1 when anything is not applied. */
export async function showControllerStatus(
  confDir: string,
  settings: PodSettings,
  gatewayHosts: readonly string[] | undefined,
  output: { write(text: string): unknown },
): Promise<ExitCode> {
  const { entries, skipped } = await readConf(confDir);
  const observed = await observeCluster(settings);
  const report = buildStatus(confDir, entries, observed, settings, gatewayHosts);
  report.warnings.unshift(...skipped.map((entry) => entry.message));
  output.write(formatStatus(report));
  return report.invalid.length > 0 ? EXIT.badInput : report.problems.length > 0 ? EXIT.failed : EXIT.ok;
}
