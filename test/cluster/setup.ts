import { performance } from 'node:perf_hooks';
import type { TestProject } from 'vitest/node';
import { ControlPlane } from '../../lab/control-plane.js';
import { binaryProblems, kubeBinaries } from '../../lab/kube-binaries.js';
import { runningUnderCi } from '../helpers/ci.js';

/**
 * Starts one real control plane for the whole cluster layer (the files run one after another) and
 * prints the version it runs. Without the binaries the layer is reported as skipped, with the
 * reason; under CI (CI set, as .ci/run does) that is an error instead: there it must run.
 */

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const binaries = kubeBinaries();
  const problems = await binaryProblems(binaries);
  if (problems.length > 0) {
    const reason = `the Kubernetes ${binaries.kubernetesVersion} binaries are not built (${problems[0]}): run npm run cluster:build, which needs Go`;
    if (runningUnderCi()) throw new Error(`the cluster tests must run under CI, but ${reason}`);
    project.provide('cluster', null);
    project.provide('clusterSkip', reason);
    return undefined;
  }
  const started = performance.now();
  // Two endpoints per EndpointSlice: every service with more pods has several slices.
  const plane = await ControlPlane.start({ binaries, maxEndpointsPerSlice: 2 });
  try {
    const version = await plane.access.version();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `cluster tests against Kubernetes ${version.server} (kube-apiserver at ${plane.info.server}, kubectl ${version.client}, etcd ${binaries.etcdVersion}; up in ${seconds} s)`,
    );
  } catch (error) {
    await plane.stop();
    throw error;
  }
  project.provide('cluster', plane.info);
  project.provide('clusterSkip', null);
  return async () => {
    await plane.stop();
  };
}
