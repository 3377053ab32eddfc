import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyRbac,
  ClusterControllerBench,
  clusterSkipReason,
  CONFIGMAP,
  createApp,
  deleteNamespaces,
  externalService,
  FORWARDER_NAMESPACE,
  kubectl,
} from '../helpers/cluster.js';

/**
 * controller/rbac.yaml grants the controller's user what it needs and nothing more, and a missing
 * permission is reported clearly. Checked by the API server itself (SelfSubjectAccessReview, and
 * the controller's own requests). The gateway side uses the scp and ssh stand-ins of test/bin.
 */

const SOURCES = [{ namespace: 'rbac-apps', service: 'api', sourceIP: '192.168.122.200' }];

describe.skipIf(clusterSkipReason !== undefined)('controller/rbac.yaml', () => {
  let bench: ClusterControllerBench;

  beforeAll(async () => {
    bench = await new ClusterControllerBench().init();
    await applyRbac();
    await createApp('rbac-apps', 'api', [{ name: 'api-1', ip: '10.244.3.1' }]);
  });

  afterAll(async () => {
    await applyRbac();
    await deleteNamespaces('rbac-apps', FORWARDER_NAMESPACE);
    bench.dispose();
  });

  it.each([
    ['list services --all-namespaces', 'yes'],
    ['list endpointslices.discovery.k8s.io --all-namespaces', 'yes'],
    [`get namespaces/${FORWARDER_NAMESPACE}`, 'yes'],
    [`delete namespaces/${FORWARDER_NAMESPACE}`, 'yes'],
    [`create pods -n ${FORWARDER_NAMESPACE}`, 'yes'],
    [`update services -n ${FORWARDER_NAMESPACE}`, 'yes'],
    [`update configmaps/${CONFIGMAP} -n ${FORWARDER_NAMESPACE}`, 'yes'],
    [`create serviceaccounts -n ${FORWARDER_NAMESPACE}`, 'yes'],
    [`create roles.rbac.authorization.k8s.io -n ${FORWARDER_NAMESPACE}`, 'yes'],
    [`create rolebindings.rbac.authorization.k8s.io -n ${FORWARDER_NAMESPACE}`, 'yes'],
    [`get secrets/my-ssh-key -n ${FORWARDER_NAMESPACE}`, 'yes'],
    ['create namespaces', 'no'],
    ['delete namespaces/rbac-apps', 'no'],
    ['get services -n rbac-apps', 'no'],
    ['list pods --all-namespaces', 'no'],
    ['create pods -n rbac-apps', 'no'],
    ['list secrets --all-namespaces', 'no'],
    [`get secrets/another -n ${FORWARDER_NAMESPACE}`, 'no'],
    [`list secrets -n ${FORWARDER_NAMESPACE}`, 'no'],
    ['update configmaps -n rbac-apps', 'no'],
    [`patch pods -n ${FORWARDER_NAMESPACE}`, 'no'],
    ['create rolebindings.rbac.authorization.k8s.io -n rbac-apps', 'no'],
    ['create clusterrolebindings.rbac.authorization.k8s.io', 'no'],
    [`create serviceaccounts --subresource=token -n ${FORWARDER_NAMESPACE}`, 'no'],
    [`escalate roles.rbac.authorization.k8s.io -n ${FORWARDER_NAMESPACE}`, 'no'],
    [`bind roles.rbac.authorization.k8s.io -n ${FORWARDER_NAMESPACE}`, 'no'],
    ['get nodes', 'no'],
  ])('the controller may %s: %s', async (request, answer) => {
    const result = await kubectl(['auth', 'can-i', ...request.split(' ')], { kubeconfig: bench.controllerKubeconfig, reject: false });
    expect(result.stdout.trim()).toBe(answer);
  });

  it('runs a whole cycle with these rights only, and reports a permission taken away by the forbidden request', async () => {
    bench.writeConf('api-egress.yaml', externalService('api-egress', SOURCES));
    const first = await bench.cycle();
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.requests.filter((event) => event.responseStatus?.code === 403)).toEqual([]);
    const rules = await bench.rules('api-egress');

    // The administrator takes `update` on ConfigMaps away; the next change of rules needs it.
    const role = JSON.parse((await kubectl(['get', 'role', 'k8s-ext-connector-controller', '-n', FORWARDER_NAMESPACE, '-o', 'json'])).stdout) as {
      rules: { resources: string[]; resourceNames?: string[]; verbs: string[] }[];
    };
    for (const rule of role.rules) {
      if (rule.resources.includes('configmaps')) rule.verbs = rule.verbs.filter((verb) => verb !== 'update');
    }
    await kubectl(['replace', '-f', '-'], { input: JSON.stringify(role) });

    bench.writeConf('api-egress.yaml', externalService('api-egress', SOURCES, [8000, 8001]));
    const denied = await bench.cycle();
    expect(denied.exitCode).toBe(1);
    expect(denied.stderr).toMatch(new RegExp(`ERROR .*failed.* replace 2 ConfigMap objects: ${CONFIGMAP}-api-egress, ${CONFIGMAP}`));
    expect(denied.stderr).toContain(
      `configmaps \\"${CONFIGMAP}-api-egress\\" is forbidden: User \\"k8s-ext-controller\\" cannot update resource \\"configmaps\\" in API group \\"\\" in the namespace \\"${FORWARDER_NAMESPACE}\\"`,
    );
    expect(denied.requests.filter((event) => event.responseStatus?.code === 403).map((event) => `${event.verb} ${event.objectRef?.resource}/${event.objectRef?.name}`)).toEqual([
      `update configmaps/${CONFIGMAP}-api-egress`,
      `update configmaps/${CONFIGMAP}`,
    ]);
    expect(await bench.rules('api-egress')).toBe(rules);

    await applyRbac();
    const restored = await bench.cycle();
    expect(restored.exitCode, restored.stderr).toBe(0);
    expect(await bench.rules('api-egress')).toContain('8001');
  });

  it.each([
    [`get configmaps/${CONFIGMAP}-api-egress`, 'yes'],
    [`watch configmaps/${CONFIGMAP}-api-egress`, 'yes'],
    [`list configmaps/${CONFIGMAP}-api-egress`, 'yes'],
    [`update configmaps/${CONFIGMAP}-api-egress`, 'no'],
    [`get configmaps/${CONFIGMAP}`, 'no'],
    [`get configmaps/${CONFIGMAP}-other`, 'no'],
    ['list configmaps', 'no'],
    ['get secrets/my-ssh-key', 'no'],
    ['list pods', 'no'],
  ])("the forwarder pod's ServiceAccount may %s: %s", async (request, answer) => {
    const account = `system:serviceaccount:${FORWARDER_NAMESPACE}:k8s-ext-forwarder-api-egress`;
    const result = await kubectl(['auth', 'can-i', ...request.split(' '), '-n', FORWARDER_NAMESPACE, '--as', account], { reject: false });
    expect(result.stdout.trim()).toBe(answer);
  });
});
