import fs from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { run } from '../lib/exec.js';
import { PACKAGE_ROOT } from './netns.js';

/**
 * The Kubernetes and etcd binaries the lab's control plane runs: one pinned version of each,
 * built from their Go modules by `npm run cluster:build` into a version-keyed cache folder
 * (git-ignored): <cache>/kubernetes/<version>/bin and <cache>/etcd/<version>/bin.
 */

export const KUBERNETES_VERSION = 'v1.37.2';
export const ETCD_VERSION = 'v3.6.16';
export const KUBERNETES_PROGRAMS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubectl'] as const;
export type KubernetesProgram = (typeof KUBERNETES_PROGRAMS)[number] | 'etcd';

/** The cache root: CLUSTER_CACHE_DIR, else .cache in the package root. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.CLUSTER_CACHE_DIR?.trim();
  return configured ? path.resolve(configured) : path.join(PACKAGE_ROOT, '.cache');
}

export interface KubeBinaries {
  kubernetesVersion: string;
  etcdVersion: string;
  /** Where kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy and kubectl are. */
  kubernetesBinDir: string;
  etcdBinDir: string;
  path(program: KubernetesProgram): string;
}

export function kubeBinaries(env: NodeJS.ProcessEnv = process.env): KubeBinaries {
  const root = cacheRoot(env);
  const kubernetesBinDir = path.join(root, 'kubernetes', KUBERNETES_VERSION, 'bin');
  const etcdBinDir = path.join(root, 'etcd', ETCD_VERSION, 'bin');
  return {
    kubernetesVersion: KUBERNETES_VERSION,
    etcdVersion: ETCD_VERSION,
    kubernetesBinDir,
    etcdBinDir,
    path: (program) => path.join(program === 'etcd' ? etcdBinDir : kubernetesBinDir, program),
  };
}

/** The command that prints a binary's version, and the text the right version prints. */
function versionProbe(program: KubernetesProgram, binaries: KubeBinaries): { args: string[]; expected: string } {
  if (program === 'etcd') return { args: ['--version'], expected: `etcd Version: ${binaries.etcdVersion.replace(/^v/, '')}\n` };
  if (program === 'kubectl') return { args: ['version', '--client'], expected: `Client Version: ${binaries.kubernetesVersion}\n` };
  return { args: ['--version'], expected: `Kubernetes ${binaries.kubernetesVersion}\n` };
}

/**
 * What is wrong with the cached binaries (missing, not executable, another version): one line per
 * program, empty when every binary is there and reports the pinned version.
 */
export async function binaryProblems(binaries: KubeBinaries): Promise<string[]> {
  const programs: KubernetesProgram[] = [...KUBERNETES_PROGRAMS, 'etcd'];
  const problems = await Promise.all(
    programs.map(async (program): Promise<string | undefined> => {
      const file = binaries.path(program);
      if (!fs.existsSync(file)) return `${program}: missing (${file})`;
      const probe = versionProbe(program, binaries);
      try {
        const result = await run(file, probe.args, { timeoutMs: 30_000 });
        if (!result.stdout.includes(probe.expected)) return `${program}: ${JSON.stringify(result.stdout.split('\n')[0])} is not ${probe.expected.trim()}`;
        return undefined;
      } catch (error) {
        return `${program}: ${errorMessage(error).split('\n')[0] ?? ''}`;
      }
    }),
  );
  return problems.filter((problem) => problem !== undefined);
}

/** Whether the `go` command is on PATH (the binaries can be built here). */
export async function goVersion(): Promise<string | undefined> {
  const result = await run('go', ['env', 'GOVERSION'], { reject: false, timeoutMs: 30_000 }).catch(() => undefined);
  return result?.ok ? result.stdout.trim() : undefined;
}
