import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { run } from '../lib/exec.js';
import { binaryProblems, cacheRoot, goVersion, KUBERNETES_PROGRAMS, kubeBinaries, type KubeBinaries } from './kube-binaries.js';

/**
 * Builds kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy and kubectl from the
 * k8s.io/kubernetes Go module and etcd from go.etcd.io/etcd/server/v3, at the versions pinned in
 * kube-binaries.ts, into the version-keyed cache folder. Everything comes from the Go module proxy
 * (GOPROXY); nothing is downloaded when the control plane runs.
 *
 * k8s.io/kubernetes cannot be `go install`ed: it requires its staging modules (k8s.io/api,
 * k8s.io/client-go, ...) at v0.0.0 and maps them to ./staging with replace directives, which Go
 * ignores in a dependency. So it is built from a scratch module whose go.mod replaces each of those
 * modules (the list read from k8s.io/kubernetes's own go.mod) with its published v0.<minor>.<patch>.
 * etcd gets a scratch module of its own, so that the two dependency graphs never mix.
 */

const say = (text: string): void => void process.stdout.write(`${text}\n`);
const seconds = (since: number): string => `${((performance.now() - since) / 1000).toFixed(1)} s`;

/** Go runs with the workspace off and cgo off (upstream builds these binaries static). */
const GO_ENV: NodeJS.ProcessEnv = { GOWORK: 'off', CGO_ENABLED: '0' };

async function go(args: string[], cwd: string, options: { capture?: boolean } = {}): Promise<string> {
  const result = await run('go', args, {
    cwd,
    env: GO_ENV,
    timeoutMs: 0,
    stdout: options.capture ? 'pipe' : 'inherit',
    stderr: 'inherit',
  });
  return result.stdout;
}

interface ModuleInfo {
  GoMod: string;
  Time?: string;
}

async function downloadModule(module: string, cwd: string): Promise<ModuleInfo> {
  const info = JSON.parse(await go(['mod', 'download', '-json', module], cwd, { capture: true })) as ModuleInfo & { Error?: string };
  if (info.Error) throw new Error(`go mod download ${module}: ${info.Error}`);
  return info;
}

/** k8s.io/kubernetes's go.mod: its `go` line and the staging modules it maps to ./staging. */
export function stagingModules(goMod: string): { goVersion: string | undefined; modules: string[] } {
  const modules: string[] = [];
  let goLine: string | undefined;
  for (const line of goMod.split('\n')) {
    const version = /^go\s+(\d+\.\d+(?:\.\d+)?)\s*$/.exec(line);
    if (version) goLine = version[1];
    const replace = /^\s*(?:replace\s+)?(k8s\.io\/[A-Za-z0-9._-]+)\s+=>\s+\.\/staging\//.exec(line);
    if (replace?.[1] && !modules.includes(replace[1])) modules.push(replace[1]);
  }
  return { goVersion: goLine, modules };
}

/** Kubernetes v1.X.Y is published with its staging modules at v0.X.Y. */
export function stagingVersion(kubernetesVersion: string): string {
  const match = /^v1\.(\d+\.\d+.*)$/.exec(kubernetesVersion);
  if (!match) throw new Error(`${kubernetesVersion} is not a Kubernetes v1.X.Y version`);
  return `v0.${match[1]}`;
}

/** The scratch module's go.mod: k8s.io/kubernetes plus one replace per staging module. */
export function kubernetesBuildGoMod(kubernetesVersion: string, upstream: { goVersion: string | undefined; modules: readonly string[] }): string {
  const staging = stagingVersion(kubernetesVersion);
  return [
    'module k8s-ext-connector.build/kubernetes',
    '',
    `go ${upstream.goVersion ?? '1.24'}`,
    '',
    `require k8s.io/kubernetes ${kubernetesVersion}`,
    '',
    'replace (',
    ...upstream.modules.map((module) => `\t${module} => ${module} ${staging}`),
    ')',
    '',
  ].join('\n');
}

const KUBERNETES_PACKAGES = KUBERNETES_PROGRAMS.map((program) => `k8s.io/kubernetes/cmd/${program}`);

/** The -X flags hack/lib/version.sh sets, so that `--version` prints the real version. */
export function versionLdflags(kubernetesVersion: string, buildDate: string | undefined): string {
  const [, major, minor] = /^v(\d+)\.(\d+)\./.exec(kubernetesVersion) ?? [];
  const values: Record<string, string | undefined> = {
    gitVersion: kubernetesVersion,
    gitMajor: major,
    gitMinor: minor,
    gitTreeState: 'clean',
    buildDate,
  };
  const flags = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    for (const [name, value] of Object.entries(values)) if (value !== undefined) flags.push(`-X ${pkg}.${name}=${value}`);
  }
  return flags.join(' ');
}

/** Builds into a fresh folder beside bin/, then moves each binary into bin/ (a rename each). */
async function buildInto(binDir: string, build: (outDir: string) => Promise<void>): Promise<void> {
  fs.mkdirSync(path.dirname(binDir), { recursive: true });
  const outDir = fs.mkdtempSync(path.join(path.dirname(binDir), '.bin-'));
  try {
    await build(outDir);
    fs.mkdirSync(binDir, { recursive: true });
    for (const file of fs.readdirSync(outDir)) fs.renameSync(path.join(outDir, file), path.join(binDir, file));
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

async function buildKubernetes(binaries: KubeBinaries): Promise<void> {
  const moduleDir = path.join(path.dirname(binaries.kubernetesBinDir), 'module');
  fs.mkdirSync(moduleDir, { recursive: true });
  let started = performance.now();
  say(`==> k8s.io/kubernetes@${binaries.kubernetesVersion}: reading its go.mod`);
  const info = await downloadModule(`k8s.io/kubernetes@${binaries.kubernetesVersion}`, moduleDir);
  const upstream = stagingModules(fs.readFileSync(info.GoMod, 'utf8'));
  if (upstream.modules.length === 0) throw new Error(`${info.GoMod}: no k8s.io/* => ./staging replace directives found`);
  say(`    ${upstream.modules.length} staging modules, each replaced with its ${stagingVersion(binaries.kubernetesVersion)}`);
  fs.writeFileSync(path.join(moduleDir, 'go.mod'), kubernetesBuildGoMod(binaries.kubernetesVersion, upstream));
  fs.writeFileSync(
    path.join(moduleDir, 'tools.go'),
    ['//go:build tools', '', 'package tools', '', 'import (', ...KUBERNETES_PACKAGES.map((pkg) => `\t_ "${pkg}"`), ')', ''].join('\n'),
  );
  await go(['mod', 'tidy'], moduleDir);
  say(`    module resolved in ${seconds(started)}`);

  started = performance.now();
  say(`==> building ${KUBERNETES_PROGRAMS.join(', ')} (the first build takes many minutes)`);
  await buildInto(binaries.kubernetesBinDir, async (outDir) => {
    await go(['build', '-trimpath', '-ldflags', versionLdflags(binaries.kubernetesVersion, info.Time), '-o', `${outDir}/`, ...KUBERNETES_PACKAGES], moduleDir);
  });
  say(`    built in ${seconds(started)}`);
}

async function buildEtcd(binaries: KubeBinaries): Promise<void> {
  const moduleDir = path.join(path.dirname(binaries.etcdBinDir), 'module');
  fs.mkdirSync(moduleDir, { recursive: true });
  const started = performance.now();
  say(`==> building etcd from go.etcd.io/etcd/server/v3@${binaries.etcdVersion}`);
  fs.writeFileSync(path.join(moduleDir, 'go.mod'), 'module k8s-ext-connector.build/etcd\n\ngo 1.24\n');
  fs.rmSync(path.join(moduleDir, 'go.sum'), { force: true });
  await go(['get', '-tool', `go.etcd.io/etcd/server/v3@${binaries.etcdVersion}`], moduleDir);
  await buildInto(binaries.etcdBinDir, async (outDir) => {
    await go(['build', '-trimpath', '-ldflags', '-s -w', '-o', path.join(outDir, 'etcd'), 'go.etcd.io/etcd/server/v3'], moduleDir);
  });
  say(`    built in ${seconds(started)}`);
}

export interface BuildOptions {
  /** Rebuild even when the cached binaries are current. */
  force?: boolean;
  /** Without go on PATH, say so and succeed (the cluster tests then report themselves as skipped). */
  skipWithoutGo?: boolean;
}

/** Builds what is missing or outdated; returns the exit code. */
export async function buildClusterBinaries(options: BuildOptions): Promise<number> {
  const started = performance.now();
  const binaries = kubeBinaries();
  say(`Kubernetes ${binaries.kubernetesVersion} and etcd ${binaries.etcdVersion} binaries in ${cacheRoot()}`);
  const before = await binaryProblems(binaries);
  if (before.length === 0 && !options.force) {
    say(`up to date (checked in ${seconds(started)}); --force rebuilds`);
    return 0;
  }
  for (const problem of before) say(`  ${problem}`);
  const version = await goVersion();
  if (version === undefined) {
    const reason = 'go is not on PATH: install Go (1.26 or later) to build the Kubernetes binaries';
    if (options.skipWithoutGo) {
      say(`not built: ${reason}`);
      return 0;
    }
    process.stderr.write(`cluster:build: ${reason}\n`);
    return 1;
  }
  say(`using ${version}`);
  const needKubernetes = options.force || before.some((problem) => !problem.startsWith('etcd:'));
  const needEtcd = options.force || before.some((problem) => problem.startsWith('etcd:'));
  if (needKubernetes) await buildKubernetes(binaries);
  if (needEtcd) await buildEtcd(binaries);
  const after = await binaryProblems(binaries);
  if (after.length > 0) {
    for (const problem of after) process.stderr.write(`cluster:build: ${problem}\n`);
    return 1;
  }
  say(`done in ${seconds(started)}: ${binaries.kubernetesBinDir}, ${binaries.etcdBinDir}`);
  return 0;
}
