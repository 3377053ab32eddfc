import { describe, expect, it } from 'vitest';
import { parseSnapshot, serializeSnapshot, snapshotFromObjects, type ClusterSnapshot } from '../../../controller/snapshot.js';

const kubectlObjects = {
  pods: [
    { metadata: { name: 'es1', namespace: 'external-services', labels: { externalService: 'es1' } }, status: { podIP: '10.244.0.50' } },
    { metadata: { name: 'es2', namespace: 'external-services' }, status: { phase: 'Pending' } },
  ],
  services: [
    {
      metadata: { name: 's1', namespace: 'ns1', annotations: { a: 'b' } },
      spec: { type: 'ClusterIP', clusterIP: '10.96.0.11', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }, { name: 'dns', protocol: 'UDP', port: 53 }], selector: { app: 'x' } },
    },
    { metadata: { name: 'headless', namespace: 'ns1' }, spec: { clusterIP: 'None', ports: [{ port: 80, targetPort: 'web' }] } },
    { metadata: { name: 'ext', namespace: 'ns1' }, spec: { type: 'ExternalName', externalName: 'db.example.org' } },
  ],
  endpointSlices: [
    {
      metadata: { name: 's1-abcde', namespace: 'ns1', labels: { 'kubernetes.io/service-name': 's1' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.0.11'], conditions: { ready: true } }, { addresses: ['10.244.0.12'], conditions: { ready: false } }],
    },
    { metadata: { name: 'headless-fghij', namespace: 'ns1', labels: { 'kubernetes.io/service-name': 'headless' } }, addressType: 'IPv4', endpoints: null },
  ],
};

/** An EndpointSlice of service ns1/<service> with the given endpoints. */
function slice(service: string, name: string, endpoints: unknown[], labels: Record<string, string> = { 'kubernetes.io/service-name': service }): unknown {
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'ns1', labels }, addressType: 'IPv4', endpoints };
}

describe('snapshotFromObjects', () => {
  it('keeps what genrule needs from kubectl JSON: pod IPs, cluster IPs, every port, ready endpoint addresses', () => {
    expect(snapshotFromObjects(kubectlObjects)).toEqual<ClusterSnapshot>({
      pods: [
        { namespace: 'external-services', name: 'es1', podIP: '10.244.0.50', labels: { externalService: 'es1' } },
        { namespace: 'external-services', name: 'es2', podIP: undefined, labels: {} },
      ],
      services: [
        {
          namespace: 'ns1',
          name: 's1',
          type: 'ClusterIP',
          clusterIP: '10.96.0.11',
          ports: [
            { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 },
            { name: 'dns', protocol: 'UDP', port: 53, targetPort: undefined },
          ],
          selector: { app: 'x' },
          labels: {},
          annotations: { a: 'b' },
        },
        { namespace: 'ns1', name: 'headless', type: 'ClusterIP', clusterIP: 'None', ports: [{ name: undefined, protocol: 'TCP', port: 80, targetPort: 'web' }], selector: {}, labels: {}, annotations: {} },
        { namespace: 'ns1', name: 'ext', type: 'ExternalName', clusterIP: undefined, ports: [], selector: {}, labels: {}, annotations: {} },
      ],
      endpoints: [
        { namespace: 'ns1', name: 's1', readyIPs: ['10.244.0.11'] },
        { namespace: 'ns1', name: 'headless', readyIPs: [] },
      ],
    });
  });
});

describe('endpoints from EndpointSlices', () => {
  const endpointsOf = (endpointSlices: unknown[]): ClusterSnapshot['endpoints'] => snapshotFromObjects({ pods: [], services: [], endpointSlices }).endpoints;

  it('gathers every slice of a service, each address once, in address order', () => {
    expect(
      endpointsOf([
        slice('s1', 's1-a', [{ addresses: ['10.244.0.10'] }, { addresses: ['10.244.0.9'] }]),
        slice('s1', 's1-b', [{ addresses: ['10.244.0.9'] }, { addresses: ['10.244.0.100'] }]),
        slice('s2', 's2-a', [{ addresses: ['10.244.1.1'] }]),
      ]),
    ).toEqual([
      { namespace: 'ns1', name: 's1', readyIPs: ['10.244.0.9', '10.244.0.10', '10.244.0.100'] },
      { namespace: 'ns1', name: 's2', readyIPs: ['10.244.1.1'] },
    ]);
  });

  it('leaves out endpoints whose ready condition is false, and counts a missing one as ready', () => {
    expect(
      endpointsOf([
        slice('s1', 's1-a', [
          { addresses: ['10.244.0.1'], conditions: { ready: false, serving: true, terminating: true } },
          { addresses: ['10.244.0.2'], conditions: {} },
          { addresses: ['10.244.0.3'] },
          { addresses: ['10.244.0.4'], conditions: { ready: true } },
        ]),
      ]),
    ).toEqual([{ namespace: 'ns1', name: 's1', readyIPs: ['10.244.0.2', '10.244.0.3', '10.244.0.4'] }]);
  });

  it('ignores slices that belong to no service and malformed entries', () => {
    expect(
      endpointsOf([
        slice('s1', 'mirrored', [{ addresses: ['10.244.0.1'] }], {}),
        slice('s1', 's1-a', [null, { addresses: 'x' }, { addresses: [7, ''] }, { addresses: ['10.244.0.2'] }]),
        'not an object',
      ]),
    ).toEqual([{ namespace: 'ns1', name: 's1', readyIPs: ['10.244.0.2'] }]);
  });

  it('gives a snapshot saved from v1 Endpoints and one read from EndpointSlices the same content', () => {
    const fromSlices = snapshotFromObjects({
      pods: [],
      services: [],
      endpointSlices: [slice('my-service1', 'my-service1-x', [{ addresses: ['10.244.0.11'], conditions: { ready: true } }])],
    });
    const saved = parseSnapshot(
      '{"version":1,"pods":[],"services":[],"endpoints":[{"namespace":"ns1","name":"my-service1","readyIPs":["10.244.0.11"]}]}',
      'old.json',
    );
    expect(fromSlices).toEqual(saved);
  });
});

describe('snapshot files', () => {
  it('read back what was saved', () => {
    const snapshot = snapshotFromObjects(kubectlObjects);
    const text = serializeSnapshot(snapshot);
    expect(JSON.parse(text)).toMatchObject({ version: 1 });
    expect(parseSnapshot(text, 'snap.json')).toEqual(snapshot);
  });

  it.each([
    ['text that is not JSON', '{', /^snap\.json: not a JSON snapshot/],
    ['a list', '[]', /^snap\.json: must be an object$/],
    ['a missing version', '{"pods":[],"services":[],"endpoints":[]}', /^snap\.json: version: missing is not a supported snapshot version \(1\)$/],
    ['another version', '{"version":2,"pods":[],"services":[],"endpoints":[]}', /^snap\.json: version: 2 is not a supported/],
    ['missing pods', '{"version":1,"services":[],"endpoints":[]}', /^snap\.json: pods: must be a list$/],
    ['a pod without name', '{"version":1,"pods":[{"namespace":"a"}],"services":[],"endpoints":[]}', /^snap\.json: pods\[0\]\.name: must be a non-empty string$/],
    [
      'a service port out of range',
      '{"version":1,"pods":[],"services":[{"namespace":"a","name":"b","ports":[{"port":0}]}],"endpoints":[]}',
      /^snap\.json: services\[0\]\.ports\[0\]\.port: must be a port number \(1\.\.65535\)$/,
    ],
    [
      'an endpoint address that is not a string',
      '{"version":1,"pods":[],"services":[],"endpoints":[{"namespace":"a","name":"b","readyIPs":[1]}]}',
      /^snap\.json: endpoints\[0\]\.readyIPs\[0\]: must be a non-empty string$/,
    ],
  ])('rejects %s, naming the file and field', (_case, text, message) => {
    expect(() => parseSnapshot(text, 'snap.json')).toThrow(message);
  });
});
