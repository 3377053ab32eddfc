import { describe, expect, it } from 'vitest';
import type { ExternalServicePort } from '../../../lib/externalservice.js';
import { forwarderConfigMap, forwarderPod, forwarderService, parseStringMap, POD_SPEC_ANNOTATION, servicePorts, stableJson, stateConfigMap } from '../../../controller/objects.js';

const settings = {
  namespace: 'external-services',
  configMapName: 'external-service-data',
  configMapKey: 'data.yaml',
  secretName: 'my-ssh-key',
  secretKey: 'id_rsa',
  image: 'forwarder:0.1',
};

describe('forwarderPod', () => {
  it('is the original controller.sh pod, with a managed-by label, its own rules ConfigMap watched through the API as its own ServiceAccount', () => {
    const pod = forwarderPod('my-external-service1', settings);
    const { annotations, ...metadata } = pod.metadata;
    expect({ ...pod, metadata }).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'my-external-service1',
        namespace: 'external-services',
        labels: { externalService: 'my-external-service1', 'app.kubernetes.io/managed-by': 'k8s-ext-connector' },
      },
      spec: {
        serviceAccountName: 'k8s-ext-forwarder-my-external-service1',
        containers: [
          {
            name: 'forwarder',
            image: 'forwarder:0.1',
            securityContext: { privileged: true },
            env: [
              { name: 'EXTERNAL_SERVICE_NAME', value: 'my-external-service1' },
              { name: 'DATA_FILE', value: '/etc/external-service/config/data.yaml' },
              { name: 'RULES_CONFIGMAP', value: 'external-service-data-my-external-service1' },
              { name: 'RULES_CONFIGMAP_KEY', value: 'data.yaml' },
              { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            ],
            volumeMounts: [
              { name: 'data-file', mountPath: '/etc/external-service/config' },
              { name: 'ssh-key-volume', mountPath: '/etc/ssh-key' },
            ],
          },
        ],
        volumes: [
          { name: 'data-file', configMap: { name: 'external-service-data-my-external-service1' } },
          { name: 'ssh-key-volume', secret: { secretName: 'my-ssh-key', defaultMode: 256 } },
        ],
      },
    });
    expect(annotations).toEqual({ [POD_SPEC_ANNOTATION]: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('follows the overridden image, ConfigMap, key and secret', () => {
    const pod = forwarderPod('es', { ...settings, image: 'reg/fwd:2', configMapName: 'cm', configMapKey: 'rules.yaml', secretName: 'key' });
    expect(JSON.stringify(pod)).toContain('"image":"reg/fwd:2"');
    expect(pod).toMatchObject({
      spec: {
        containers: [{ env: [{}, { name: 'DATA_FILE', value: '/etc/external-service/config/rules.yaml' }, { value: 'cm-es' }, { value: 'rules.yaml' }, {}] }],
        volumes: [{ configMap: { name: 'cm-es' } }, { secret: { secretName: 'key' } }],
      },
    });
  });

  it('records the spec it was made from, so that a change of image, key or names makes the pod again', () => {
    const sha = (overrides: Partial<typeof settings>): string | undefined => forwarderPod('es', { ...settings, ...overrides }).metadata.annotations?.[POD_SPEC_ANNOTATION];
    expect(sha({})).toBe(sha({}));
    expect(sha({ image: 'forwarder:0.2' })).not.toBe(sha({}));
    expect(sha({ configMapName: 'other' })).not.toBe(sha({}));
    expect(sha({ secretName: 'other' })).not.toBe(sha({}));
  });
});

const tcp = (port: number, targetPort = port, name?: string): ExternalServicePort =>
  name === undefined ? { protocol: 'TCP', port, targetPort } : { protocol: 'TCP', port, targetPort, name };

describe('servicePorts', () => {
  it.each<{ title: string; ports: ExternalServicePort[]; names: (string | undefined)[] }>([
    { title: 'leaves a single port unnamed', ports: [tcp(8000)], names: [undefined] },
    { title: 'keeps the name given to a single port', ports: [tcp(8000, 8000, 'web')], names: ['web'] },
    { title: 'names each port of a multi-port service', ports: [tcp(80), tcp(443)], names: ['tcp-80', 'tcp-443'] },
    { title: 'keeps given names and names the others', ports: [tcp(80, 80, 'http'), tcp(443)], names: ['http', 'tcp-443'] },
    { title: 'avoids a generated name that a given name already uses', ports: [tcp(80, 80, 'tcp-443'), tcp(443)], names: ['tcp-443', 'port-1'] },
  ])('$title', ({ ports, names }) => {
    expect(servicePorts(ports).map((port) => port.name)).toEqual(names);
  });
});

describe('forwarderService', () => {
  it('selects the forwarder pod and exposes the ExternalService ports', () => {
    expect(forwarderService({ name: 'es', ports: [tcp(8000, 8080)] }, 'external-services')).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'es',
        namespace: 'external-services',
        labels: { externalService: 'es', 'app.kubernetes.io/managed-by': 'k8s-ext-connector' },
      },
      spec: { selector: { externalService: 'es' }, ports: [{ protocol: 'TCP', port: 8000, targetPort: 8080 }] },
    });
  });

  it('carries the existing cluster IP when given one', () => {
    expect(forwarderService({ name: 'es', ports: [tcp(1)] }, 'ns', '10.96.0.5')).toMatchObject({ spec: { clusterIP: '10.96.0.5' } });
  });
});

describe('forwarderConfigMap', () => {
  it('holds one forwarder’s rules under the configured key and its conf file’s last valid version, labelled as its own', () => {
    expect(forwarderConfigMap('es1', settings, { rules: 'x\n', lastValid: { 'es1.yaml': 'text' } })).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'external-service-data-es1',
        namespace: 'external-services',
        labels: { externalService: 'es1', 'app.kubernetes.io/managed-by': 'k8s-ext-connector' },
        annotations: { 'k8s-ext-connector/last-valid-conf': '{"es1.yaml":"text"}' },
      },
      data: { 'data.yaml': 'x\n' },
    });
  });
});

describe('stateConfigMap', () => {
  it('holds the annotations and data given, with annotations only when there are some, labelled as the controller’s', () => {
    expect(stateConfigMap(settings, { annotations: {}, data: {}, labels: { team: 'x' } })).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'external-service-data', namespace: 'external-services', labels: { team: 'x', 'app.kubernetes.io/managed-by': 'k8s-ext-connector' } },
      data: {},
    });
    expect(stateConfigMap(settings, { annotations: { a: 'b' }, data: {}, labels: {} }).metadata.annotations).toEqual({ a: 'b' });
  });
});

describe('annotation helpers', () => {
  it('writes maps with sorted keys so that equal content is equal text', () => {
    expect(stableJson({ b: '2', a: '1' })).toBe(stableJson({ a: '1', b: '2' }));
    expect(stableJson({ b: '2', a: '1' })).toBe('{"a":"1","b":"2"}');
  });

  it.each([
    [undefined, {}],
    ['not json', {}],
    ['[1,2]', {}],
    ['"text"', {}],
    ['{"a":"1","b":2}', { a: '1' }],
  ])('reads %j as %j', (text, expected) => {
    expect(parseStringMap(text)).toEqual(expected);
  });
});
