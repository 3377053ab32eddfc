import { describe, expect, it } from 'vitest';
import type { ExternalServicePort } from '../../../lib/externalservice.js';
import { forwarderPod, forwarderService, parseStringMap, rulesConfigMap, servicePorts, stableJson } from '../../../controller/objects.js';

const settings = {
  namespace: 'external-services',
  configMapName: 'external-service-data',
  configMapKey: 'data.yaml',
  secretName: 'my-ssh-key',
  secretKey: 'id_rsa',
  image: 'forwarder:0.1',
};

describe('forwarderPod', () => {
  it('is the original controller.sh pod, plus a managed-by label', () => {
    expect(forwarderPod('my-external-service1', settings)).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'my-external-service1',
        namespace: 'external-services',
        labels: { externalService: 'my-external-service1', 'app.kubernetes.io/managed-by': 'k8s-ext-connector' },
      },
      spec: {
        containers: [
          {
            name: 'forwarder',
            image: 'forwarder:0.1',
            securityContext: { privileged: true },
            env: [
              { name: 'EXTERNAL_SERVICE_NAME', value: 'my-external-service1' },
              { name: 'DATA_FILE', value: '/etc/external-service/config/data.yaml' },
            ],
            volumeMounts: [
              { name: 'data-file', mountPath: '/etc/external-service/config' },
              { name: 'ssh-key-volume', mountPath: '/etc/ssh-key' },
            ],
          },
        ],
        volumes: [
          { name: 'data-file', configMap: { name: 'external-service-data' } },
          { name: 'ssh-key-volume', secret: { secretName: 'my-ssh-key', defaultMode: 256 } },
        ],
      },
    });
  });

  it('follows the overridden image, ConfigMap, key and secret', () => {
    const pod = forwarderPod('es', { ...settings, image: 'reg/fwd:2', configMapName: 'cm', configMapKey: 'rules.yaml', secretName: 'key' });
    expect(JSON.stringify(pod)).toContain('"image":"reg/fwd:2"');
    expect(pod).toMatchObject({
      spec: {
        containers: [{ env: [{}, { name: 'DATA_FILE', value: '/etc/external-service/config/rules.yaml' }] }],
        volumes: [{ configMap: { name: 'cm' } }, { secret: { secretName: 'key' } }],
      },
    });
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

describe('rulesConfigMap', () => {
  it('holds the rules under the configured key, with annotations only when there are some', () => {
    expect(rulesConfigMap(settings, { rules: 'x\n', annotations: {} })).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'external-service-data', namespace: 'external-services', labels: { 'app.kubernetes.io/managed-by': 'k8s-ext-connector' } },
      data: { 'data.yaml': 'x\n' },
    });
    expect(rulesConfigMap(settings, { rules: '', annotations: { a: 'b' } }).metadata.annotations).toEqual({ a: 'b' });
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
