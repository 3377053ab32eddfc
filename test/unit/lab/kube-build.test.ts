import { describe, expect, it } from 'vitest';
import { cacheRoot, kubeBinaries } from '../../../lab/kube-binaries.js';
import { kubernetesBuildGoMod, stagingModules, stagingVersion, versionLdflags } from '../../../lab/kube-build.js';

const UPSTREAM_GO_MOD = `module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tsigs.k8s.io/yaml v1.6.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
\tgithub.com/example/fork => github.com/example/fork v1.2.3
)

replace k8s.io/kms => ./staging/src/k8s.io/kms
`;

describe('the scratch module that builds k8s.io/kubernetes', () => {
  it("reads the staging modules and the go version from k8s.io/kubernetes's own go.mod", () => {
    expect(stagingModules(UPSTREAM_GO_MOD)).toEqual({
      goVersion: '1.26.0',
      modules: ['k8s.io/api', 'k8s.io/client-go', 'k8s.io/cri-streaming', 'k8s.io/kms'],
    });
  });

  it('maps Kubernetes v1.X.Y to the staging modules v0.X.Y, pre-releases included', () => {
    expect(stagingVersion('v1.37.2')).toBe('v0.37.2');
    expect(stagingVersion('v1.38.0-rc.1')).toBe('v0.38.0-rc.1');
    expect(() => stagingVersion('v2.0.0')).toThrow('v2.0.0 is not a Kubernetes v1.X.Y version');
  });

  it('requires k8s.io/kubernetes and replaces every staging module with its published version', () => {
    const goMod = kubernetesBuildGoMod('v1.37.2', stagingModules(UPSTREAM_GO_MOD));
    expect(goMod).toBe(
      [
        'module k8s-ext-connector.build/kubernetes',
        '',
        'go 1.26.0',
        '',
        'require k8s.io/kubernetes v1.37.2',
        '',
        'replace (',
        '\tk8s.io/api => k8s.io/api v0.37.2',
        '\tk8s.io/client-go => k8s.io/client-go v0.37.2',
        '\tk8s.io/cri-streaming => k8s.io/cri-streaming v0.37.2',
        '\tk8s.io/kms => k8s.io/kms v0.37.2',
        ')',
        '',
      ].join('\n'),
    );
  });

  it('stamps the version into component-base and client-go, so that --version prints it', () => {
    const flags = versionLdflags('v1.37.2', '2026-10-27T12:01:04Z');
    for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
      expect(flags).toContain(`-X ${pkg}.gitVersion=v1.37.2`);
      expect(flags).toContain(`-X ${pkg}.gitMajor=1`);
      expect(flags).toContain(`-X ${pkg}.gitMinor=37`);
      expect(flags).toContain(`-X ${pkg}.gitTreeState=clean`);
      expect(flags).toContain(`-X ${pkg}.buildDate=2026-10-27T12:01:04Z`);
    }
  });
});

describe('the binaries cache', () => {
  it('lives in .cache of the package unless CLUSTER_CACHE_DIR says otherwise, keyed by version', () => {
    expect(cacheRoot({})).toMatch(/\/\.cache$/);
    const binaries = kubeBinaries({ CLUSTER_CACHE_DIR: '/srv/k8s-cache' });
    expect(binaries.path('kube-apiserver')).toBe(`/srv/k8s-cache/kubernetes/${binaries.kubernetesVersion}/bin/kube-apiserver`);
    expect(binaries.path('kubectl')).toBe(`/srv/k8s-cache/kubernetes/${binaries.kubernetesVersion}/bin/kubectl`);
    expect(binaries.path('etcd')).toBe(`/srv/k8s-cache/etcd/${binaries.etcdVersion}/bin/etcd`);
  });
});
