import { describe, expect, it } from 'vitest';
import type { Action } from '../../../lib/action.js';
import type { ExternalServicePort } from '../../../lib/externalservice.js';
import { DELIVERED_ANNOTATION, LAST_VALID_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL } from '../../../controller/objects.js';
import type { ObservedConfigMap } from '../../../controller/observe.js';
import {
  configMapAfterInit,
  deliveredAfter,
  planDeliveries,
  planObjects,
  lastValidWithinLimit,
  planPublish,
  planTeardown,
  publicationProblem,
  CONFIGMAP_DATA_LIMIT,
  serviceDifference,
  type ObjectSettingsForPlan,
  type ObservedObjects,
} from '../../../controller/plan.js';
import type { PodInfo, ServiceInfo } from '../../../controller/snapshot.js';

const NS = 'external-services';
const settings: ObjectSettingsForPlan = {
  namespace: NS,
  configMapName: 'external-service-data',
  configMapKey: 'data.yaml',
  secretName: 'my-ssh-key',
  secretKey: 'id_rsa',
  image: 'forwarder:0.1',
  sshKeyPath: '/keys/id_rsa',
};
const MANAGED = { [MANAGED_BY_LABEL]: MANAGED_BY };
const tcp = (port: number, targetPort = port, name?: string): ExternalServicePort =>
  name === undefined ? { protocol: 'TCP', port, targetPort } : { protocol: 'TCP', port, targetPort, name };

function pod(name: string, labels: Record<string, string> = { externalService: name, ...MANAGED }): PodInfo {
  return { namespace: NS, name, podIP: '10.244.0.9', labels };
}

function service(
  name: string,
  ports: { port: number; targetPort?: number | string; name?: string }[],
  labels: Record<string, string> = { externalService: name, ...MANAGED },
  namespace = NS,
): ServiceInfo {
  return {
    namespace,
    name,
    type: 'ClusterIP',
    clusterIP: '10.96.0.77',
    ports: ports.map((port) => ({ name: port.name, protocol: 'TCP', port: port.port, targetPort: port.targetPort ?? port.port })),
    selector: { externalService: name },
    labels,
    annotations: {},
  };
}

const inPlace: ObservedObjects = { namespaceExists: true, secretExists: true, configMapExists: true, pods: [], services: [] };

/** An action as `argv` plus the kind and name of the object it sends, for compact expectations. */
function summary(action: Action): string {
  if (action.input === undefined) return action.argv.join(' ');
  const object = JSON.parse(action.input) as { kind: string; metadata: { name: string } };
  return `${action.argv.join(' ')} ${object.kind}/${object.metadata.name}`;
}

describe('planObjects', () => {
  it.each<{ title: string; services: { name: string; ports: ExternalServicePort[] }[]; observed: ObservedObjects; deleteLeftovers?: boolean; expected: string[] }>([
    {
      title: 'creates the namespace, the secret, an empty ConfigMap, then the pod and service of each ExternalService on an empty cluster',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { namespaceExists: false, secretExists: false, configMapExists: false, pods: [], services: [] },
      expected: [
        'kubectl create -f - Namespace/external-services',
        'kubectl create secret generic my-ssh-key -n external-services --from-file=id_rsa=/keys/id_rsa',
        'kubectl create -f - ConfigMap/external-service-data',
        'kubectl create -f - Pod/es1',
        'kubectl create -f - Service/es1',
      ],
    },
    {
      title: 'plans nothing when every object is in place',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: [],
    },
    {
      title: 'creates only the missing service when the pod exists',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, pods: [pod('es1')] },
      expected: ['kubectl create -f - Service/es1'],
    },
    {
      title: 'replaces a service whose ports changed',
      services: [{ name: 'es1', ports: [tcp(9000)] }],
      observed: { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: ['kubectl replace -f - Service/es1'],
    },
    {
      title: 'replaces a service whose target port changed',
      services: [{ name: 'es1', ports: [tcp(8000, 8080)] }],
      observed: { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: ['kubectl replace -f - Service/es1'],
    },
    {
      title: 'treats a numeric-string target port as the same port',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000, targetPort: '8000' }])] },
      expected: [],
    },
    {
      title: 'creates no service for an ExternalService without ports',
      services: [{ name: 'es1', ports: [] }],
      observed: { ...inPlace, pods: [pod('es1')] },
      expected: [],
    },
    {
      title: 'deletes its own service when the ExternalService no longer has ports',
      services: [{ name: 'es1', ports: [] }],
      observed: { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: ['kubectl delete service es1 -n external-services --ignore-not-found --wait=false'],
    },
    {
      title: 'deletes the pod and service of an ExternalService that is gone',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: {
        ...inPlace,
        pods: [pod('es1'), pod('gone')],
        services: [service('es1', [{ port: 8000 }]), service('gone', [{ port: 80 }])],
      },
      expected: [
        'kubectl delete pod gone -n external-services --ignore-not-found --wait=false',
        'kubectl delete service gone -n external-services --ignore-not-found --wait=false',
      ],
    },
    {
      title: 'never deletes pods or services it did not create',
      services: [],
      observed: { ...inPlace, pods: [pod('theirs', { app: 'x' })], services: [service('theirs', [{ port: 80 }], {})] },
      expected: [],
    },
    {
      title: 'leaves a service it did not create alone even when its ports differ',
      services: [{ name: 'es1', ports: [tcp(9000)] }],
      observed: { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }], {})] },
      expected: [],
    },
    {
      title: 'keeps leftovers while an invalid conf file of unknown content might own them',
      services: [],
      observed: { ...inPlace, pods: [pod('gone')], services: [service('gone', [{ port: 80 }])] },
      deleteLeftovers: false,
      expected: [],
    },
    {
      title: 'ignores services of the same name in other namespaces',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }], undefined, 'default')] },
      expected: ['kubectl create -f - Service/es1'],
    },
  ])('$title', ({ services, observed, deleteLeftovers, expected }) => {
    const actions = planObjects({ services, deleteLeftovers: deleteLeftovers ?? true }, observed, settings);
    expect(actions.map(summary)).toEqual(expected);
  });

  it('keeps the cluster IP of a service it replaces', () => {
    const [action] = planObjects(
      { services: [{ name: 'es1', ports: [tcp(9000)] }], deleteLeftovers: true },
      { ...inPlace, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      settings,
    );
    expect(JSON.parse(action?.input ?? '{}')).toMatchObject({ spec: { clusterIP: '10.96.0.77', ports: [{ port: 9000, targetPort: 9000 }] } });
  });

  it('sends every object as JSON on stdin, never as a command-line argument', () => {
    const actions = planObjects(
      { services: [{ name: 'es1', ports: [tcp(8000)] }], deleteLeftovers: true },
      { namespaceExists: false, secretExists: true, configMapExists: false, pods: [], services: [] },
      settings,
    );
    expect(actions.every((action) => action.argv.join(' ') === 'kubectl create -f -')).toBe(true);
    expect(actions.every((action) => typeof JSON.parse(action.input ?? '') === 'object')).toBe(true);
  });
});

describe('serviceDifference', () => {
  it.each<{ title: string; ports: ExternalServicePort[]; observed: ServiceInfo; expected: string | undefined }>([
    { title: 'same single port', ports: [tcp(80)], observed: service('s', [{ port: 80 }]), expected: undefined },
    {
      title: 'multi-port service with the generated names',
      ports: [tcp(80), tcp(443)],
      observed: service('s', [{ port: 80, name: 'tcp-80' }, { port: 443, name: 'tcp-443' }]),
      expected: undefined,
    },
    {
      title: 'a port added',
      ports: [tcp(80), tcp(443)],
      observed: service('s', [{ port: 80 }]),
      expected: 'ports /TCP/80->80 -> tcp-80/TCP/80->80,tcp-443/TCP/443->443',
    },
    { title: 'a port removed', ports: [tcp(80)], observed: service('s', [{ port: 80 }, { port: 81 }]), expected: 'ports /TCP/80->80,/TCP/81->81 -> /TCP/80->80' },
    {
      title: 'another selector',
      ports: [tcp(80)],
      observed: { ...service('s', [{ port: 80 }]), selector: { app: 'other' } },
      expected: 'selector differs',
    },
  ])('reports $title', ({ ports, observed, expected }) => {
    expect(serviceDifference({ name: 's', ports }, observed)).toBe(expected);
  });
});

describe('planDeliveries', () => {
  const delivery = { sshKeyPath: '/keys/id_rsa', gatewayPath: '/tmp/rules.yaml' };
  const sha = 'a'.repeat(64);

  it.each<{ title: string; hosts: string[]; delivered: Record<string, string>; expected: string[] }>([
    { title: 'sends to a host that never received rules', hosts: ['gw1'], delivered: {}, expected: ['gw1'] },
    { title: 'sends to a host that holds older rules', hosts: ['gw1'], delivered: { gw1: 'b'.repeat(64) }, expected: ['gw1'] },
    { title: 'sends nothing to a host that holds the current rules', hosts: ['gw1'], delivered: { gw1: sha }, expected: [] },
    {
      title: 'sends only to the hosts that lack the current rules',
      hosts: ['gw1', 'gw2', 'gw3'],
      delivered: { gw1: sha, gw3: 'old' },
      expected: ['gw2', 'gw3'],
    },
  ])('$title', ({ hosts, delivered, expected }) => {
    const planned = planDeliveries({ hosts, delivered, rulesSha256: sha, localFile: '/tmp/x/rules.yaml' }, delivery);
    expect([...new Set(planned.map((action) => action.scope))]).toEqual(expected.map((host) => `gateway ${host}`));
  });

  it('copies to a temporary name next to the destination, then renames it there', () => {
    const planned = planDeliveries({ hosts: ['root@gw1'], delivered: {}, rulesSha256: sha, localFile: '/tmp/x/rules.yaml' }, delivery);
    expect(planned.map((action) => action.argv)).toEqual([
      ['scp', '-i', '/keys/id_rsa', '-o', 'BatchMode=yes', '/tmp/x/rules.yaml', `root@gw1:/tmp/rules.yaml.tmp-${'a'.repeat(16)}`],
      ['ssh', '-i', '/keys/id_rsa', '-o', 'BatchMode=yes', 'root@gw1', 'mv', '-f', '--', `/tmp/rules.yaml.tmp-${'a'.repeat(16)}`, '/tmp/rules.yaml'],
    ]);
  });
});

describe('deliveredAfter', () => {
  it.each<{ title: string; hosts: string[]; before: Record<string, string>; failed: string[]; expected: Record<string, string> }>([
    { title: 'records this cycle’s deliveries', hosts: ['a'], before: {}, failed: [], expected: { a: 'new' } },
    { title: 'keeps what a host received before when its delivery failed', hosts: ['a', 'b'], before: { a: 'old', b: 'old' }, failed: ['gateway b'], expected: { a: 'new', b: 'old' } },
    { title: 'records no host whose first delivery failed', hosts: ['a'], before: {}, failed: ['gateway a'], expected: {} },
    { title: 'is not misled by the failure of another kind of action', hosts: ['a'], before: {}, failed: ['pod/a'], expected: { a: 'new' } },
    { title: 'forgets hosts that are no longer listed', hosts: ['a'], before: { a: 'new', gone: 'x' }, failed: [], expected: { a: 'new' } },
  ])('$title', ({ hosts, before, failed, expected }) => {
    expect(deliveredAfter({ hosts, delivered: before, rulesSha256: 'new' }, new Set(failed))).toEqual(expected);
  });
});

describe('planPublish', () => {
  const rules = '"forwarder": {}\n"gateway": {}\n';
  const current: ObservedConfigMap = {
    data: { 'data.yaml': rules },
    annotations: { [DELIVERED_ANNOTATION]: '{"gw1":"s1"}', [LAST_VALID_ANNOTATION]: '{"a.yaml":"text"}' },
    labels: MANAGED,
  };
  const desired = { rules, delivered: { gw1: 's1' }, lastValid: { 'a.yaml': 'text' } };

  it.each<{ title: string; change: Partial<typeof desired>; reason: string | undefined }>([
    { title: 'publishes nothing when rules and state are unchanged', change: {}, reason: undefined },
    { title: 'publishes new rules', change: { rules: `${rules}# x\n` }, reason: 'new rules' },
    { title: 'records a new delivery', change: { delivered: { gw1: 's2' } }, reason: 'delivery state' },
    { title: 'records a changed conf file', change: { lastValid: { 'a.yaml': 'new text' } }, reason: 'last valid conf' },
  ])('$title', ({ change, reason }) => {
    const actions = planPublish({ ...desired, ...change }, current, settings);
    expect(actions.map((action) => action.reason)).toEqual(reason === undefined ? [] : [`publish ConfigMap external-service-data (${reason})`]);
  });

  it('replaces the ConfigMap with the rules, the state annotations, and what others put on it', () => {
    const observed: ObservedConfigMap = { data: { 'data.yaml': '', other: 'kept' }, annotations: { note: 'kept' }, labels: { team: 'x' } };
    const [action] = planPublish({ rules, delivered: { gw2: 's', gw1: 's' }, lastValid: { 'b.yaml': 'B', 'a.yaml': 'A' } }, observed, settings);
    expect(action?.argv).toEqual(['kubectl', 'replace', '-f', '-']);
    expect(JSON.parse(action?.input ?? '{}')).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'external-service-data',
        namespace: NS,
        labels: { team: 'x', ...MANAGED },
        annotations: {
          note: 'kept',
          [DELIVERED_ANNOTATION]: '{"gw1":"s","gw2":"s"}',
          [LAST_VALID_ANNOTATION]: '{"a.yaml":"A","b.yaml":"B"}',
        },
      },
      data: { 'data.yaml': rules, other: 'kept' },
    });
  });

  it('compares with the empty ConfigMap that init creates when there was none', () => {
    const actions = planPublish({ rules: '', delivered: {}, lastValid: {} }, configMapAfterInit(undefined, settings), settings);
    expect(actions.map((action) => action.reason)).toEqual(['publish ConfigMap external-service-data (delivery state, last valid conf)']);
  });
});

describe('publicationProblem', () => {
  const empty: ObservedConfigMap = { data: { 'data.yaml': '' }, annotations: {}, labels: MANAGED };
  // The API server counts every key and value of the data, in bytes.
  const fill = (bytes: number): string => 'x'.repeat(bytes);

  it('accepts rules that bring the data to exactly 1 MiB, keys included', () => {
    expect(publicationProblem(fill(CONFIGMAP_DATA_LIMIT - 'data.yaml'.length), empty, settings)).toBeUndefined();
  });

  it('refuses one byte more, naming the limit, the size and that nothing is published', () => {
    expect(publicationProblem(fill(CONFIGMAP_DATA_LIMIT - 'data.yaml'.length + 1), empty, settings)).toBe(
      'the rules would make ConfigMap external-service-data hold 1048577 bytes of data, over the 1 MiB (1048576 bytes) a ConfigMap may hold: ' +
        'nothing was published; the ConfigMap and the gateways keep the previous rules',
    );
  });

  it('counts the keys others put on the ConfigMap, and multi-byte characters as their bytes', () => {
    const crowded: ObservedConfigMap = { ...empty, data: { 'data.yaml': 'old', other: fill(CONFIGMAP_DATA_LIMIT / 2) } };
    expect(publicationProblem(fill(CONFIGMAP_DATA_LIMIT / 2), crowded, settings)).toMatch(/hold 1048590 bytes/);
    expect(publicationProblem('é'.repeat(CONFIGMAP_DATA_LIMIT / 2), empty, settings)).toMatch(/hold 1048585 bytes/);
  });
});

describe('lastValidWithinLimit', () => {
  const observed: ObservedConfigMap = { data: { 'data.yaml': '' }, annotations: { [LAST_VALID_ANNOTATION]: '{"a.yaml":"old"}', other: 'x' }, labels: {} };
  it('records the new versions while all annotations fit in 256 KiB', () => {
    expect(lastValidWithinLimit({ 'a.yaml': 'new' }, { gw1: 's' }, observed, settings)).toEqual({ lastValid: { 'a.yaml': 'new' } });
  });

  it('keeps the previous record, and says why, when the new one would not fit', () => {
    const huge = Object.fromEntries(Array.from({ length: 300 }, (_, index) => [`f${index}.yaml`, 'y'.repeat(1000)]));
    const result = lastValidWithinLimit(huge, { gw1: 's' }, observed, settings);
    expect(result.lastValid).toEqual({ 'a.yaml': 'old' });
    expect(result.problem).toMatch(
      /^the last valid versions of 300 conf file\(s\) would make the annotations of ConfigMap external-service-data \d+ bytes, over the 256 KiB \(262144 bytes\) an object may hold: the previous record/,
    );
    expect(planPublish({ rules: '', delivered: { gw1: 's' }, lastValid: result.lastValid }, observed, settings)[0]?.input).toContain('{\\"a.yaml\\":\\"old\\"}');
  });
});

describe('planTeardown', () => {
  const ours = { namespace: MANAGED, secretExists: true, configMap: MANAGED };
  const nothing = { namespace: undefined, secretExists: false, configMap: undefined };
  it.each<{ title: string; listed: string[]; observed: Parameters<typeof planTeardown>[1]; expected: string[]; kept?: string[] }>([
    {
      title: 'deletes the labelled pods and services, then the ConfigMap, the secret and the namespace',
      listed: ['es1'],
      observed: { ...ours, pods: [{ name: 'es1', labels: MANAGED }], services: [{ name: 'es1', labels: MANAGED }] },
      expected: [
        'kubectl delete pod es1 -n external-services --ignore-not-found',
        'kubectl delete service es1 -n external-services --ignore-not-found',
        'kubectl delete configmap external-service-data -n external-services --ignore-not-found',
        'kubectl delete secret my-ssh-key -n external-services --ignore-not-found',
        'kubectl delete namespace external-services --ignore-not-found',
      ],
    },
    {
      title: 'also deletes objects the controller left over, and nothing it did not label, naming a listed one it keeps',
      listed: ['theirs'],
      observed: { ...nothing, pods: [{ name: 'old', labels: MANAGED }, { name: 'theirs', labels: {} }], services: [{ name: 'theirs', labels: { app: 'x' } }] },
      expected: ['kubectl delete pod old -n external-services --ignore-not-found'],
      kept: [
        'pod theirs in namespace external-services kept: it does not carry the label app.kubernetes.io/managed-by=k8s-ext-connector, so the controller did not make it',
        'service theirs in namespace external-services kept: it does not carry the label app.kubernetes.io/managed-by=k8s-ext-connector, so the controller did not make it',
      ],
    },
    {
      title: 'keeps a namespace, ConfigMap and secret it did not make (FORWARDER_NAMESPACE=default), saying why',
      listed: [],
      observed: { namespace: { 'kubernetes.io/metadata.name': 'default' }, secretExists: true, configMap: {}, pods: [{ name: 'es1', labels: MANAGED }], services: [] },
      expected: ['kubectl delete pod es1 -n external-services --ignore-not-found'],
      kept: [
        'ConfigMap external-service-data in namespace external-services kept: it does not carry the label app.kubernetes.io/managed-by=k8s-ext-connector, so the controller did not make it',
        'secret my-ssh-key in namespace external-services kept: the namespace is not one the controller made, so the secret may not be its own',
        'namespace external-services kept: it does not carry the label app.kubernetes.io/managed-by=k8s-ext-connector, so the controller did not make it',
      ],
    },
    {
      title: 'plans nothing when nothing exists',
      listed: ['es1'],
      observed: { ...nothing, pods: [], services: [] },
      expected: [],
    },
  ])('$title', ({ listed, observed, expected, kept }) => {
    const plan = planTeardown(listed, observed, settings);
    expect(plan.actions.map((action) => action.argv.join(' '))).toEqual(expected);
    expect(plan.kept).toEqual(kept ?? []);
  });
});
