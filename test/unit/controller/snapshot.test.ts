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
  endpoints: [
    { metadata: { name: 's1', namespace: 'ns1' }, subsets: [{ addresses: [{ ip: '10.244.0.11' }], notReadyAddresses: [{ ip: '10.244.0.12' }] }] },
    { metadata: { name: 'headless', namespace: 'ns1' } },
  ],
};

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
