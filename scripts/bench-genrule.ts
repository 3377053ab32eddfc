import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generateRules } from '../controller/genrule.js';
import { snapshotFromObjects } from '../controller/snapshot.js';
import { run } from '../lib/exec.js';
import { loadExternalServices } from '../lib/externalservice.js';
import { blockLines, serializeRules, type RulesDocument } from '../lib/rules.js';
import { median } from './stats.js';

/**
 * Rule generation at scale: N ExternalServices x 4 sources x 2 ports, each source service with
 * 2 ports and 3 ready endpoints, 16 source IPs shared by all. For each N: the time generateRules
 * takes from a snapshot, and the kubectl calls `bin/controller genrule` makes against the
 * kubectl stand-in (constant, where the original made one call per lookup).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STANDIN_BIN = path.join(ROOT, 'test/bin');
const FORWARDER_NAMESPACE = 'external-services';
const SOURCES_PER_SERVICE = 4;
const SOURCE_IPS = 16;
const GENERATION_RUNS = 5;

export interface GenruleMeasurement {
  externalServices: number;
  sources: number;
  rulesLines: number;
  /** Median time of generateRules from an in-memory snapshot (conf already loaded). */
  generationMs: number;
  /** Median time of serializing those rules to YAML. */
  serializeMs: number;
  /** kubectl calls made by one `bin/controller genrule` run. */
  kubectlCalls: number;
  /** Wall time of that `bin/controller genrule` run (process start included). */
  cliMs: number;
  /** The CLI printed the same rules as the in-memory generation. */
  cliMatches: boolean;
}

export interface Cluster {
  pods: Record<string, unknown>[];
  services: Record<string, unknown>[];
  endpointSlices: Record<string, unknown>[];
}

function sourceIP(index: number): string {
  return `10.200.0.${(index % SOURCE_IPS) + 1}`;
}

/** ExternalService es-<esIndex>; source number n (es-<esIndex>'s sources are 4 x esIndex onwards) gets the source IP `sourceIPOf(n)`. */
export function confText(esIndex: number, sourceIPOf: (serial: number) => string = sourceIP): string {
  const sources = Array.from({ length: SOURCES_PER_SERVICE }, (_, j) => {
    const namespace = `bench-ns${j}`;
    return `    - service: {namespace: ${namespace}, name: svc-${esIndex}}\n      sourceIP: ${sourceIPOf(esIndex * SOURCES_PER_SERVICE + j)}\n`;
  }).join('');
  return `apiVersion: externalservice.example.com/v1alpha1
kind: ExternalService
metadata:
  name: es-${esIndex}
spec:
  targetIP: 192.168.${100 + (esIndex % 100)}.${(esIndex % 250) + 1}
  sources:
${sources}  ports:
    - {protocol: TCP, port: 8000, targetPort: 8000}
    - {protocol: TCP, port: 8443, targetPort: 8443}
`;
}

export function clusterFor(count: number): Cluster {
  const cluster: Cluster = { pods: [], services: [], endpointSlices: [] };
  for (let i = 0; i < count; i++) {
    cluster.pods.push({ kind: 'Pod', metadata: { namespace: FORWARDER_NAMESPACE, name: `es-${i}` }, status: { podIP: `10.244.${200 + (i >> 8)}.${i & 255}` } });
    for (let j = 0; j < SOURCES_PER_SERVICE; j++) {
      const metadata = { namespace: `bench-ns${j}`, name: `svc-${i}` };
      const serial = i * SOURCES_PER_SERVICE + j;
      cluster.services.push({
        kind: 'Service',
        metadata,
        spec: { type: 'ClusterIP', clusterIP: `10.96.${serial >> 8}.${serial & 255}`, ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 443 }] },
      });
      const endpoints = [0, 1, 2].map((k) => ({ addresses: [`10.${100 + k}.${serial >> 8}.${serial & 255}`], conditions: { ready: true } }));
      cluster.endpointSlices.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { ...metadata, name: `${metadata.name}-abcde`, labels: { 'kubernetes.io/service-name': metadata.name } },
        addressType: 'IPv4',
        endpoints,
        ports: [{ port: 80 }, { port: 443 }],
      });
    }
  }
  return cluster;
}

/** Writes objects the way the kubectl stand-in stores them: <resource>/<namespace>/<name>.json. */
export function seedStandin(dir: string, cluster: Cluster): void {
  const groups: [string, Record<string, unknown>[]][] = [
    ['pods', cluster.pods],
    ['services', cluster.services],
    ['endpointslices', cluster.endpointSlices],
  ];
  for (const [resource, objects] of groups) {
    for (const object of objects) {
      const metadata = object.metadata as { namespace: string; name: string };
      const file = path.join(dir, resource, metadata.namespace, `${metadata.name}.json`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify({ apiVersion: 'v1', ...object }));
    }
  }
}

function countLines(rules: RulesDocument): number {
  let lines = 0;
  for (const entry of Object.values(rules.forwarder)) for (const block of Object.values(entry)) lines += blockLines(block).length;
  for (const entry of Object.values(rules.gateway)) lines += blockLines(entry['iptables-rule']).length;
  return lines;
}


async function measure(count: number): Promise<GenruleMeasurement> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-genrule-'));
  try {
    const confDir = path.join(work, 'conf');
    const kubeDir = path.join(work, 'kube');
    const log = path.join(work, 'calls.jsonl');
    fs.mkdirSync(confDir);
    for (let i = 0; i < count; i++) fs.writeFileSync(path.join(confDir, `es-${String(i).padStart(4, '0')}.yaml`), confText(i));
    const cluster = clusterFor(count);
    seedStandin(kubeDir, cluster);

    const loaded = await loadExternalServices(confDir);
    if (loaded.errors.length > 0) throw new Error(`bench conf is invalid: ${loaded.errors[0]?.message}`);
    const snapshot = snapshotFromObjects(cluster);
    let text = '';
    let rulesLines = 0;
    const generationTimes: number[] = [];
    const serializeTimes: number[] = [];
    for (let runIndex = 0; runIndex < GENERATION_RUNS; runIndex++) {
      const started = performance.now();
      const { rules } = generateRules(loaded.services, snapshot, { forwarderNamespace: FORWARDER_NAMESPACE });
      const generated = performance.now();
      text = serializeRules(rules);
      serializeTimes.push(performance.now() - generated);
      generationTimes.push(generated - started);
      rulesLines = countLines(rules);
    }

    const started = performance.now();
    const cli = await run(path.join(ROOT, 'bin/controller'), ['genrule', confDir], {
      env: { PATH: `${STANDIN_BIN}${path.delimiter}${process.env.PATH ?? ''}`, KUBE_STANDIN_DIR: kubeDir, STANDIN_LOG: log, NO_COLOR: '1' },
      timeoutMs: 120_000,
    });
    const cliMs = performance.now() - started;
    const kubectlCalls = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).length;

    return {
      externalServices: count,
      sources: loaded.services.reduce((sum, service) => sum + service.sources.length, 0),
      rulesLines,
      generationMs: Math.round(median(generationTimes) * 100) / 100,
      serializeMs: Math.round(median(serializeTimes) * 100) / 100,
      kubectlCalls,
      cliMs: Math.round(cliMs),
      cliMatches: cli.stdout === text,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export async function benchGenrule(counts: number[]): Promise<GenruleMeasurement[]> {
  const results: GenruleMeasurement[] = [];
  for (const count of counts) results.push(await measure(count));
  return results;
}

export function formatGenruleTable(results: readonly GenruleMeasurement[]): string {
  const header = ['ExternalServices', 'sources', 'rules lines', 'generation ms', 'YAML ms', 'kubectl calls', 'CLI ms', 'CLI = in-memory'];
  const rows = results.map((result) => [
    String(result.externalServices),
    String(result.sources),
    String(result.rulesLines),
    result.generationMs.toFixed(2),
    result.serializeMs.toFixed(2),
    String(result.kubectlCalls),
    String(result.cliMs),
    result.cliMatches ? 'yes' : 'NO',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)));
  const format = (cells: string[]): string => cells.map((cell, column) => cell.padStart(widths[column] ?? 0)).join('  ');
  return [format(header), format(widths.map((width) => '-'.repeat(width))), ...rows.map(format)].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const counts = process.argv.slice(2).map(Number).filter((count) => Number.isInteger(count) && count > 0);
  const results = await benchGenrule(counts.length > 0 ? counts : [10, 50, 200]);
  process.stdout.write(`${formatGenruleTable(results)}\n`);
  if (results.some((result) => !result.cliMatches)) process.exitCode = 1;
}
