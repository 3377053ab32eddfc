import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, systemSkipReason } from '../helpers/netns.js';
import { ADDRESSES, buildTopology, httpGet, loggedClients, type Topology } from '../../lab/topology.js';

const skip = systemSkipReason(['iptables-restore', 'sysctl']);
if (skip) console.warn(`system tests skipped: ${skip}`);

describe.skipIf(skip !== undefined)('the end-to-end lab topology without the connector', () => {
  const lab = new Lab('k8xt');
  let topology: Topology;

  beforeAll(async () => {
    topology = await buildTopology(lab);
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  it('a pod reaches another pod through its service IP (kube-proxy-like DNAT on the bridge)', async () => {
    await expect(httpGet(lab, topology.pods.forwarder.netns, 'http://10.96.0.11/')).resolves.toBe('my-pod1 saw you as 10.244.0.50');
  });

  it('a pod reaches the external server as the node address, which is what the connector fixes', async () => {
    await expect(httpGet(lab, topology.pods.pod1.netns, `http://${ADDRESSES.external}:8000/`)).resolves.toBe(
      `external-server saw you as ${ADDRESSES.node}`,
    );
    expect(loggedClients(topology.externalLog)).toEqual([ADDRESSES.node]);
  });
});
