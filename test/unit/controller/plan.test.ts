import { describe, expect, it } from 'vitest';
import { PARALLEL_LIMIT, type Action } from '../../../lib/action.js';
import type { ExternalServicePort } from '../../../lib/externalservice.js';
import {
  DELIVERED_ANNOTATION,
  forwarderPod,
  forwarderRoleRules,
  LAST_VALID_ANNOTATION,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  POD_SPEC_ANNOTATION,
} from '../../../controller/objects.js';
import type { ObservedConfigMap } from '../../../controller/observe.js';
import {
  ANNOTATIONS_LIMIT,
  changesToActions,
  CONFIGMAP_DATA_LIMIT,
  configMapAfterInit,
  deliveredAfter,
  desiredForwarderConfigMaps,
  emptyForwarderObjects,
  forwarderConfigMapProblem,
  objectActions,
  planDeliveries,
  planForwarderConfigMaps,
  planObjects,
  planState,
  planTeardown,
  rememberedConf,
  rulesKey,
  serviceDifference,
  type ObjectChange,
  type ObjectSettingsForPlan,
  type ObservedForwarderConfigMap,
  type ObservedForwarderObjects,
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
const owned = (name: string): Record<string, string> => ({ externalService: name, ...MANAGED });
const tcp = (port: number, targetPort = port, name?: string): ExternalServicePort =>
  name === undefined ? { protocol: 'TCP', port, targetPort } : { protocol: 'TCP', port, targetPort, name };

/** A forwarder pod made from the current spec (or from another one). */
function pod(name: string, labels: Record<string, string> = owned(name), specSha256 = forwarderPod(name, settings).metadata.annotations?.[POD_SPEC_ANNOTATION]): PodInfo {
  return { namespace: NS, name, podIP: '10.244.0.9', labels, specSha256 };
}

function service(
  name: string,
  ports: { port: number; targetPort?: number | string; name?: string }[],
  labels: Record<string, string> = owned(name),
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

const RULES = '"forwarder": {}\n"gateway": {}\n';

function forwarderConfigMapOf(name: string, rules = RULES, lastValid = '{}'): ObservedForwarderConfigMap {
  return { name: `external-service-data-${name}`, labels: owned(name), data: { 'data.yaml': rules }, annotations: { [LAST_VALID_ANNOTATION]: lastValid } };
}

/** Every forwarder object of these ExternalServices, as the API returns them (its own order of a rule's fields). */
function forwarderObjectsOf(...names: string[]): ObservedForwarderObjects {
  const account = (name: string): { name: string; labels: Record<string, string> } => ({ name: `k8s-ext-forwarder-${name}`, labels: owned(name) });
  return {
    configMaps: names.map((name) => forwarderConfigMapOf(name)),
    serviceAccounts: names.map(account),
    roles: names.map((name) => ({
      ...account(name),
      rules: forwarderRoleRules(name, settings).map((rule) => ({ verbs: rule.verbs, apiGroups: rule.apiGroups, resources: rule.resources, resourceNames: rule.resourceNames })),
    })),
    roleBindings: names.map(account),
  };
}

const inPlace: ObservedObjects = { namespaceExists: true, secretExists: true, configMapExists: true, pods: [], services: [], forwarderObjects: emptyForwarderObjects() };
const configMaps = (...names: string[]): Map<string, { rules: string; lastValid: Record<string, string> }> => new Map(names.map((name) => [name, { rules: RULES, lastValid: {} }]));

/** An action as `argv` plus the kind and name of each object it sends, for compact expectations. */
function summary(action: Action): string {
  if (action.input === undefined) return action.argv.join(' ');
  const input = JSON.parse(action.input) as { kind: string; metadata: { name: string }; items?: { kind: string; metadata: { name: string } }[] };
  return `${action.argv.join(' ')} ${(input.items ?? [input]).map((object) => `${object.kind}/${object.metadata.name}`).join(',')}`;
}

describe('planObjects', () => {
  it.each<{
    title: string;
    services: { name: string; ports: ExternalServicePort[] }[];
    observed: ObservedObjects;
    deleteLeftovers?: boolean;
    configMaps?: Map<string, { rules: string; lastValid: Record<string, string> }>;
    expected: string[];
  }>([
    {
      title: 'creates the namespace, the secret, the state ConfigMap, then each forwarder’s access, ConfigMap, pod and service on an empty cluster, one call per kind',
      services: [{ name: 'es1', ports: [tcp(8000)] }, { name: 'es2', ports: [tcp(9000)] }],
      observed: { ...inPlace, namespaceExists: false, secretExists: false, configMapExists: false },
      expected: [
        'kubectl create -f - Namespace/external-services',
        'kubectl create secret generic my-ssh-key -n external-services --from-file=id_rsa=/keys/id_rsa',
        'kubectl create -f - ConfigMap/external-service-data',
        'kubectl create -f - ServiceAccount/k8s-ext-forwarder-es1,ServiceAccount/k8s-ext-forwarder-es2',
        'kubectl create -f - Role/k8s-ext-forwarder-es1,Role/k8s-ext-forwarder-es2',
        'kubectl create -f - RoleBinding/k8s-ext-forwarder-es1,RoleBinding/k8s-ext-forwarder-es2',
        'kubectl create -f - ConfigMap/external-service-data-es1,ConfigMap/external-service-data-es2',
        'kubectl create -f - Pod/es1,Pod/es2',
        'kubectl create -f - Service/es1,Service/es2',
      ],
    },
    {
      title: 'makes a forwarder pod made from another spec (an older version’s) again, waiting until the old one is gone',
      services: [{ name: 'es1', ports: [tcp(8000)] }, { name: 'es2', ports: [tcp(8000)] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1', 'es2'), pods: [pod('es1', undefined, 'old'), { ...pod('es2'), specSha256: undefined }], services: [service('es1', [{ port: 8000 }]), service('es2', [{ port: 8000 }])] },
      expected: ['kubectl delete pods es1 es2 -n external-services --ignore-not-found', 'kubectl create -f - Pod/es1,Pod/es2'],
    },
    {
      title: 'updates a forwarder Role whose rules differ, and creates only the missing forwarder objects',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: {
        ...inPlace,
        forwarderObjects: { ...forwarderObjectsOf('es1'), roles: [{ name: 'k8s-ext-forwarder-es1', labels: owned('es1'), rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }] }], roleBindings: [] },
        pods: [pod('es1')],
        services: [service('es1', [{ port: 8000 }])],
      },
      expected: ['kubectl replace -f - Role/k8s-ext-forwarder-es1', 'kubectl create -f - RoleBinding/k8s-ext-forwarder-es1'],
    },
    {
      title: 'creates no forwarder ConfigMap without its content (one that would not fit)',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, forwarderObjects: { ...forwarderObjectsOf('es1'), configMaps: [] }, pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      configMaps: new Map(),
      expected: [],
    },
    {
      title: 'deletes the forwarder objects of an ExternalService that is gone, one call per kind',
      services: [],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('gone1', 'gone2') },
      expected: [
        'kubectl delete configmaps external-service-data-gone1 external-service-data-gone2 -n external-services --ignore-not-found --wait=false',
        'kubectl delete rolebindings.rbac.authorization.k8s.io k8s-ext-forwarder-gone1 k8s-ext-forwarder-gone2 -n external-services --ignore-not-found --wait=false',
        'kubectl delete roles.rbac.authorization.k8s.io k8s-ext-forwarder-gone1 k8s-ext-forwarder-gone2 -n external-services --ignore-not-found --wait=false',
        'kubectl delete serviceaccounts k8s-ext-forwarder-gone1 k8s-ext-forwarder-gone2 -n external-services --ignore-not-found --wait=false',
      ],
    },
    {
      title: 'plans nothing when every object is in place',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: [],
    },
    {
      title: 'creates only the missing service when the pod exists',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')] },
      expected: ['kubectl create -f - Service/es1'],
    },
    {
      title: 'replaces a service whose ports changed',
      services: [{ name: 'es1', ports: [tcp(9000)] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: ['kubectl replace -f - Service/es1'],
    },
    {
      title: 'replaces a service whose target port changed',
      services: [{ name: 'es1', ports: [tcp(8000, 8080)] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: ['kubectl replace -f - Service/es1'],
    },
    {
      title: 'treats a numeric-string target port as the same port',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000, targetPort: '8000' }])] },
      expected: [],
    },
    {
      title: 'creates no service for an ExternalService without ports',
      services: [{ name: 'es1', ports: [] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')] },
      expected: [],
    },
    {
      title: 'deletes its own service when the ExternalService no longer has ports',
      services: [{ name: 'es1', ports: [] }],
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      expected: ['kubectl delete services es1 -n external-services --ignore-not-found --wait=false'],
    },
    {
      title: 'deletes the pod and service of an ExternalService that is gone',
      services: [{ name: 'es1', ports: [tcp(8000)] }],
      observed: {
        ...inPlace,
        forwarderObjects: forwarderObjectsOf('es1'),
        pods: [pod('es1'), pod('gone')],
        services: [service('es1', [{ port: 8000 }]), service('gone', [{ port: 80 }])],
      },
      expected: [
        'kubectl delete pods gone -n external-services --ignore-not-found --wait=false',
        'kubectl delete services gone -n external-services --ignore-not-found --wait=false',
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
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000 }], {})] },
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
      observed: { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000 }], undefined, 'default')] },
      expected: ['kubectl create -f - Service/es1'],
    },
  ])('$title', ({ services, observed, deleteLeftovers, configMaps: contents, expected }) => {
    const changes = planObjects({ services, deleteLeftovers: deleteLeftovers ?? true, configMaps: contents ?? configMaps(...services.map((entry) => entry.name)) }, observed, settings);
    expect(objectActions(changes, settings).map(summary)).toEqual(expected);
  });

  it('keeps the cluster IP of a service it replaces', () => {
    const [change] = planObjects(
      { services: [{ name: 'es1', ports: [tcp(9000)] }], deleteLeftovers: true, configMaps: configMaps('es1') },
      { ...inPlace, forwarderObjects: forwarderObjectsOf('es1'), pods: [pod('es1')], services: [service('es1', [{ port: 8000 }])] },
      settings,
    );
    expect(change?.object).toMatchObject({ spec: { clusterIP: '10.96.0.77', ports: [{ port: 9000, targetPort: 9000 }] } });
  });

  it('sends every object as JSON on stdin, never as a command-line argument', () => {
    const changes = planObjects(
      { services: [{ name: 'es1', ports: [tcp(8000)] }], deleteLeftovers: true, configMaps: configMaps('es1') },
      { ...inPlace, namespaceExists: false, configMapExists: false },
      settings,
    );
    const actions = objectActions(changes, settings);
    expect(actions).toHaveLength(8);
    expect(actions.every((action) => action.argv.join(' ') === 'kubectl create -f -')).toBe(true);
    expect(actions.every((action) => typeof JSON.parse(action.input ?? '') === 'object')).toBe(true);
  });

  it('gives each forwarder a Role that reads its own ConfigMap and nothing else, bound to its ServiceAccount, which its pod runs as', () => {
    const changes = planObjects({ services: [{ name: 'es1', ports: [] }], deleteLeftovers: true, configMaps: configMaps('es1') }, inPlace, settings);
    const object = (kind: string): Record<string, unknown> | undefined => changes.find((entry) => entry.kind === kind)?.object;
    expect(object('Role')).toMatchObject({
      metadata: { name: 'k8s-ext-forwarder-es1', namespace: NS },
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['external-service-data-es1'], verbs: ['get', 'list', 'watch'] }],
    });
    expect(object('RoleBinding')).toMatchObject({
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'k8s-ext-forwarder-es1' },
      subjects: [{ kind: 'ServiceAccount', name: 'k8s-ext-forwarder-es1', namespace: NS }],
    });
    expect(object('Pod')).toMatchObject({ spec: { serviceAccountName: 'k8s-ext-forwarder-es1', volumes: [{ configMap: { name: 'external-service-data-es1' } }, {}] } });
    expect(object('ConfigMap')).toMatchObject({ metadata: { name: 'external-service-data-es1', labels: owned('es1') }, data: { 'data.yaml': RULES } });
  });
});

describe('changesToActions', () => {
  const create = (kind: ObjectChange['kind'], name: string): ObjectChange => ({
    verb: 'create',
    kind,
    name,
    reason: `create ${kind} ${name} (missing)`,
    object: { apiVersion: 'v1', kind, metadata: { name } },
  });

  it('sends the objects of one kind and verb in one List, with the reason naming a few of them and how many more', () => {
    const actions = changesToActions(Array.from({ length: 7 }, (_, index) => create('ConfigMap', `cm${index}`)), NS);
    expect(actions).toHaveLength(1);
    expect(actions[0]?.reason).toBe('create 7 ConfigMap objects (missing): cm0, cm1, cm2, cm3, cm4, and 2 more');
    expect(JSON.parse(actions[0]?.input ?? '')).toMatchObject({ apiVersion: 'v1', kind: 'List', items: [{ metadata: { name: 'cm0' } }, {}, {}, {}, {}, {}, { metadata: { name: 'cm6' } }] });
  });

  it('keeps the order of the kinds, each call its own scope', () => {
    const actions = changesToActions([create('ServiceAccount', 'a'), create('ConfigMap', 'a'), create('ConfigMap', 'b'), create('Pod', 'a')], NS);
    expect(actions.map((action) => action.scope)).toEqual(['create serviceaccounts/a', 'create configmaps', 'create pods/a']);
    expect(actions[0]?.reason).toBe('create ServiceAccount a (missing)');
  });

  it('makes as many calls for ten thousand ExternalServices as for a hundred', () => {
    const changes = (count: number): ObjectChange[] =>
      planObjects(
        { services: Array.from({ length: count }, (_, index) => ({ name: `es${index}`, ports: [tcp(8000)] })), deleteLeftovers: true, configMaps: configMaps(...Array.from({ length: count }, (_, index) => `es${index}`)) },
        inPlace,
        settings,
      );
    expect(objectActions(changes(10_000), settings)).toHaveLength(objectActions(changes(100), settings).length);
    expect(objectActions(changes(2), settings)).toHaveLength(6);
  });

  it('sends a large group as PARALLEL_LIMIT parts that run together, every object once and in order', () => {
    const actions = changesToActions(Array.from({ length: 50 }, (_, index) => create('ConfigMap', `cm${index}`)), NS);
    expect(actions).toHaveLength(PARALLEL_LIMIT);
    expect(new Set(actions.map((action) => action.parallel))).toEqual(new Set(['create configmaps']));
    expect(new Set(actions.map((action) => action.scope)).size).toBe(PARALLEL_LIMIT);
    const names = actions.flatMap((action) => {
      const input = JSON.parse(action.input ?? '') as { metadata: { name: string }; items?: { metadata: { name: string } }[] };
      return (input.items ?? [input]).map((item) => item.metadata.name);
    });
    expect(names).toEqual(Array.from({ length: 50 }, (_, index) => `cm${index}`));
    expect(actions[0]?.reason).toBe('create 6 ConfigMap objects (missing): cm0, cm1, cm2, cm3, cm4, and 1 more (part 1 of 8)');
    // A following group of another kind is its own parallel group: it runs after this one.
    const next = changesToActions([...Array.from({ length: 20 }, (_, index) => create('Pod', `p${index}`))], NS);
    expect(next[0]?.parallel).toBe('create pods');
  });
});

describe('time limits', () => {
  it('gives a List write one second more than the default time limit for each of its objects', () => {
    const names = Array.from({ length: 7 }, (_, index) => `es${index}`);
    const changes = planObjects({ services: names.map((name) => ({ name, ports: [tcp(8000)] })), deleteLeftovers: true, configMaps: configMaps(...names) }, inPlace, settings);
    expect(new Set(objectActions(changes, settings).map((action) => action.timeoutMs))).toEqual(new Set([67_000]));
  });
});

describe('rulesKey', () => {
  it('compares a Role’s rules whatever the order of their fields', () => {
    expect(rulesKey([{ verbs: ['get'], apiGroups: [''], resources: ['configmaps'] }])).toBe(rulesKey([{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }]));
    expect(rulesKey([{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }])).not.toBe(rulesKey([{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }]));
    expect(rulesKey(undefined)).toBe('');
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

describe('planForwarderConfigMaps', () => {
  const desired = new Map([['es1', { rules: RULES, lastValid: { 'es1.yaml': 'text' } }]]);
  const current = forwarderConfigMapOf('es1', RULES, '{"es1.yaml":"text"}');

  it.each<{ title: string; observed: ObservedForwarderConfigMap[]; reason: string | undefined }>([
    { title: 'publishes nothing when rules and record are unchanged', observed: [current], reason: undefined },
    { title: 'publishes new rules', observed: [{ ...current, data: { 'data.yaml': 'old' } }], reason: 'new rules' },
    { title: 'records a changed conf file', observed: [{ ...current, annotations: { [LAST_VALID_ANNOTATION]: '{"es1.yaml":"old"}' } }], reason: 'last valid conf' },
    { title: 'leaves a missing ConfigMap to planObjects, which creates it', observed: [], reason: undefined },
  ])('$title', ({ observed, reason }) => {
    const changes = planForwarderConfigMaps(desired, observed, settings);
    expect(changes.map((change) => change.reason)).toEqual(reason === undefined ? [] : [`publish ConfigMap external-service-data-es1 (${reason})`]);
  });

  it('replaces the ConfigMap with its rules and record, keeping what others put on it', () => {
    const observed = { ...current, data: { 'data.yaml': 'old', other: 'kept' }, annotations: { note: 'kept' }, labels: { ...current.labels, team: 'x' } };
    const [change] = planForwarderConfigMaps(desired, [observed], settings);
    expect(change?.verb).toBe('replace');
    expect(change?.object).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'external-service-data-es1',
        namespace: NS,
        labels: { team: 'x', ...owned('es1') },
        annotations: { note: 'kept', [LAST_VALID_ANNOTATION]: '{"es1.yaml":"text"}' },
      },
      data: { 'data.yaml': RULES, other: 'kept' },
    });
  });
});

describe('planState', () => {
  const current: ObservedConfigMap = { data: {}, annotations: { [DELIVERED_ANNOTATION]: '{"gw1":"s1"}' }, labels: MANAGED };

  it.each<{ title: string; observed: ObservedConfigMap; delivered: Record<string, string>; dropLegacy?: boolean; reason: string | undefined }>([
    { title: 'publishes nothing when the delivery state is unchanged', observed: current, delivered: { gw1: 's1' }, reason: undefined },
    { title: 'records a new delivery', observed: current, delivered: { gw1: 's2' }, reason: 'delivery state' },
    {
      title: 'drops the rules and conf records it held before rules per forwarder',
      observed: { ...current, data: { 'data.yaml': RULES }, annotations: { ...current.annotations, [LAST_VALID_ANNOTATION]: '{}' } },
      delivered: { gw1: 's1' },
      reason: 'the rules and conf records now on the forwarder ConfigMaps',
    },
    {
      title: 'keeps them while the forwarder ConfigMaps may not hold them yet',
      observed: { ...current, annotations: { ...current.annotations, [LAST_VALID_ANNOTATION]: '{}' } },
      delivered: { gw1: 's1' },
      dropLegacy: false,
      reason: undefined,
    },
    { title: 'compares with the empty ConfigMap that init creates when there was none', observed: configMapAfterInit(undefined), delivered: {}, reason: 'delivery state' },
  ])('$title', ({ observed, delivered, dropLegacy, reason }) => {
    const changes = planState({ delivered, dropLegacy: dropLegacy ?? true }, observed, settings);
    expect(changes.map((change) => change.reason)).toEqual(reason === undefined ? [] : [`publish ConfigMap external-service-data (${reason})`]);
  });

  it('writes the delivery state and keeps what others put on the ConfigMap', () => {
    const observed: ObservedConfigMap = { data: { 'data.yaml': RULES, other: 'kept' }, annotations: { note: 'kept', [LAST_VALID_ANNOTATION]: '{}' }, labels: { team: 'x' } };
    const [change] = planState({ delivered: { gw2: 's', gw1: 's' }, dropLegacy: true }, observed, settings);
    expect(change?.object).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'external-service-data', namespace: NS, labels: { team: 'x', ...MANAGED }, annotations: { note: 'kept', [DELIVERED_ANNOTATION]: '{"gw1":"s","gw2":"s"}' } },
      data: { other: 'kept' },
    });
  });
});

describe('rememberedConf', () => {
  it('takes each file’s record from its forwarder ConfigMap, and older ones from the state ConfigMap', () => {
    const state: ObservedConfigMap = { data: {}, annotations: { [LAST_VALID_ANNOTATION]: '{"a.yaml":"old A","b.yaml":"old B"}' }, labels: MANAGED };
    const forwarders = [forwarderConfigMapOf('a', RULES, '{"a.yaml":"A"}'), { ...forwarderConfigMapOf('c', RULES, '{"c.yaml":"C"}'), labels: {} }];
    expect(rememberedConf(state, forwarders)).toEqual({ 'a.yaml': 'A', 'b.yaml': 'old B' });
    expect(rememberedConf(undefined, [])).toEqual({});
  });
});

describe('desiredForwarderConfigMaps', () => {
  const services = [{ name: 'a', file: '/conf/a.yaml' }, { name: 'b', file: '/conf/b.yaml' }];

  it('gives each forwarder its own document and its own file’s record', () => {
    const result = desiredForwarderConfigMaps(services, new Map([['a', 'A rules']]), { 'a.yaml': 'A', 'b.yaml': 'B', 'c.yaml': 'C' }, settings);
    expect(result.problems).toEqual([]);
    expect([...result.configMaps]).toEqual([
      ['a', { rules: 'A rules', lastValid: { 'a.yaml': 'A' } }],
      ['b', { rules: '', lastValid: { 'b.yaml': 'B' } }],
    ]);
  });

  it('leaves out a ConfigMap whose data would pass 1 MiB or whose annotations 256 KiB, naming it, the size and the limit', () => {
    const data = 'x'.repeat(CONFIGMAP_DATA_LIMIT - 'data.yaml'.length);
    expect(forwarderConfigMapProblem('a', { rules: data, lastValid: {} }, settings)).toBeUndefined();
    expect(forwarderConfigMapProblem('a', { rules: `${data}x`, lastValid: {} }, settings)).toBe(
      'the rules of a would make ConfigMap external-service-data-a hold 1048577 bytes of data, over the 1 MiB (1048576 bytes) a ConfigMap may hold: it keeps the previous rules',
    );
    const result = desiredForwarderConfigMaps(services, new Map(), { 'a.yaml': 'y'.repeat(ANNOTATIONS_LIMIT) }, settings);
    expect([...result.configMaps.keys()]).toEqual(['b']);
    expect(result.problems).toEqual([
      expect.stringMatching(/^the last valid version of the conf file of a would make the annotations of ConfigMap external-service-data-a 262\d+ bytes, over the 256 KiB \(262144 bytes\)/),
    ]);
  });
});

describe('planTeardown', () => {
  const ours = { namespace: MANAGED, secretExists: true, configMap: MANAGED, forwarderObjects: emptyForwarderObjects() };
  const nothing = { namespace: undefined, secretExists: false, configMap: undefined, forwarderObjects: emptyForwarderObjects() };
  it.each<{ title: string; listed: string[]; observed: Parameters<typeof planTeardown>[1]; expected: string[]; kept?: string[] }>([
    {
      title: 'deletes the labelled pods and services, the forwarders’ access and ConfigMaps, then the state ConfigMap, the secret and the namespace, waiting for each',
      listed: ['es1'],
      observed: { ...ours, forwarderObjects: forwarderObjectsOf('es1', 'old'), pods: [{ name: 'es1', labels: MANAGED }], services: [{ name: 'es1', labels: MANAGED }] },
      expected: [
        'kubectl delete pods es1 -n external-services --ignore-not-found',
        'kubectl delete services es1 -n external-services --ignore-not-found',
        'kubectl delete rolebindings.rbac.authorization.k8s.io k8s-ext-forwarder-es1 k8s-ext-forwarder-old -n external-services --ignore-not-found',
        'kubectl delete roles.rbac.authorization.k8s.io k8s-ext-forwarder-es1 k8s-ext-forwarder-old -n external-services --ignore-not-found',
        'kubectl delete serviceaccounts k8s-ext-forwarder-es1 k8s-ext-forwarder-old -n external-services --ignore-not-found',
        'kubectl delete configmaps external-service-data-es1 external-service-data-old external-service-data -n external-services --ignore-not-found',
        'kubectl delete secret my-ssh-key -n external-services --ignore-not-found',
        'kubectl delete namespace external-services --ignore-not-found',
      ],
    },
    {
      title: 'also deletes objects the controller left over, and nothing it did not label, naming a listed one it keeps',
      listed: ['theirs'],
      observed: { ...nothing, pods: [{ name: 'old', labels: MANAGED }, { name: 'theirs', labels: {} }], services: [{ name: 'theirs', labels: { app: 'x' } }] },
      expected: ['kubectl delete pods old -n external-services --ignore-not-found'],
      kept: [
        'pod theirs in namespace external-services kept: it does not carry the label app.kubernetes.io/managed-by=k8s-ext-connector, so the controller did not make it',
        'service theirs in namespace external-services kept: it does not carry the label app.kubernetes.io/managed-by=k8s-ext-connector, so the controller did not make it',
      ],
    },
    {
      title: 'keeps a namespace, ConfigMap and secret it did not make (FORWARDER_NAMESPACE=default), saying why',
      listed: [],
      observed: { ...nothing, namespace: { 'kubernetes.io/metadata.name': 'default' }, secretExists: true, configMap: {}, pods: [{ name: 'es1', labels: MANAGED }], services: [] },
      expected: ['kubectl delete pods es1 -n external-services --ignore-not-found'],
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
    expect(changesToActions(plan.changes, NS).map((action) => action.argv.join(' '))).toEqual(expected);
    expect(plan.kept).toEqual(kept ?? []);
  });
});
