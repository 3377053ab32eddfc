import { errorMessage } from '../lib/errors.js';
import { KubeApiError, type KubeApi, type KubeList, type KubeObjectJson } from './kube-api.js';
import { waitFor } from './netns.js';

/**
 * The lab's Node: what a kubelet would tell the API server about itself and its pods, without
 * running anything. It registers a Ready Node with room for pods, reports a pod Running and Ready
 * with an IP through the pods/status subresource when asked (so the real endpointslice controller
 * publishes it), and finishes the graceful deletion of pods bound to it (a kubelet deletes a pod
 * with grace period 0 once its containers have stopped; without that, pods and the namespaces
 * holding them would stay Terminating).
 */

export const LAB_NODE_NAME = 'lab-node';

const encode = encodeURIComponent;

export class LabNode {
  private readonly stopping = new AbortController();
  private finisher: Promise<void> | undefined;

  private constructor(
    private readonly api: KubeApi,
    readonly name: string,
    readonly address: string,
    private readonly onError: (message: string) => void,
  ) {}

  /** The node as registered earlier (by register), to report pods or finish deletions from another program. */
  static attach(api: KubeApi, options: { name: string; address: string; onError?: (message: string) => void }): LabNode {
    return new LabNode(api, options.name, options.address, options.onError ?? (() => undefined));
  }

  /** Creates (or takes over) the Node object and reports it Ready, without taints. */
  static async register(api: KubeApi, options: { name?: string; address: string; onError?: (message: string) => void }): Promise<LabNode> {
    const node = LabNode.attach(api, { ...options, name: options.name ?? LAB_NODE_NAME });
    const resources = { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' };
    const labels = { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' };
    if ((await api.find(`/api/v1/nodes/${encode(node.name)}`)) === undefined) {
      await api.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, labels }, spec: {} });
    }
    // Node admission taints a new Node not-ready until a node controller sees it Ready; there is
    // none here (nothing would keep sending heartbeats), so the Node reports itself Ready and
    // drops the taint, as a registered kubelet's Node ends up.
    await api.patch(`/api/v1/nodes/${encode(node.name)}`, { spec: { taints: null } }, 'merge');
    const now = new Date().toISOString();
    await api.patch(
      `/api/v1/nodes/${encode(node.name)}/status`,
      {
        status: {
          capacity: resources,
          allocatable: resources,
          addresses: [
            { type: 'InternalIP', address: node.address },
            { type: 'Hostname', address: node.name },
          ],
          conditions: [
            { type: 'Ready', status: 'True', reason: 'LabNodeReady', message: 'the lab node reports pods itself', lastHeartbeatTime: now, lastTransitionTime: now },
          ],
          nodeInfo: {
            machineID: '',
            systemUUID: '',
            bootID: '',
            kernelVersion: '',
            osImage: 'k8s-ext-connector lab',
            containerRuntimeVersion: 'lab://0',
            kubeletVersion: '',
            kubeProxyVersion: '',
            operatingSystem: 'linux',
            architecture: 'amd64',
          },
        },
      },
      'strategic',
    );
    return node;
  }

  /** Starts finishing the deletion of pods bound to this node, until stop(). */
  start(): void {
    this.finisher ??= this.finishDeletions();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.finisher;
  }

  private async finishDeletions(): Promise<void> {
    const pods = `/api/v1/pods?fieldSelector=${encode(`spec.nodeName=${this.name}`)}`;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        const list = await this.api.get<KubeList>(pods);
        await Promise.all(list.items.map((pod) => this.finishDeletion(pod)));
        await this.api.watch(pods, list.metadata.resourceVersion, (event) => {
          if (event.type === 'ADDED' || event.type === 'MODIFIED') void this.finishDeletion(event.object);
        }, signal);
      } catch (error) {
        if (signal.aborted) break;
        this.onError(`lab node ${this.name}: watching its pods: ${errorMessage(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async finishDeletion(pod: KubeObjectJson): Promise<void> {
    const { name, namespace, uid, deletionTimestamp } = pod.metadata;
    if (deletionTimestamp === undefined || namespace === undefined) return;
    try {
      await this.api.delete(`/api/v1/namespaces/${encode(namespace)}/pods/${encode(name)}`, { gracePeriodSeconds: 0, preconditions: { uid } });
    } catch (error) {
      // A 409 means the pod was already replaced by a new one of that name: not ours to delete.
      if (!(error instanceof KubeApiError && error.status === 409)) this.onError(`lab node ${this.name}: deleting pod ${namespace}/${name}: ${errorMessage(error)}`);
    }
  }

  /**
   * Reports a pod bound to this node as a kubelet would once its containers run: phase Running,
   * with `ip` as its address, Ready unless `ready` is false (a failing readiness probe). Waits for the pod to be bound here first (by the scheduler,
   * or by spec.nodeName).
   */
  async setPodRunning(namespace: string, name: string, ip: string, options: { ready?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const ready = options.ready ?? true;
    const path = `/api/v1/namespaces/${encode(namespace)}/pods/${encode(name)}`;
    const pod = await waitFor(
      async () => {
        const found = await this.api.find(path);
        return found?.spec?.nodeName === this.name ? found : undefined;
      },
      options.timeoutMs ?? 30_000,
      `pod ${namespace}/${name} bound to node ${this.name}`,
    );
    const now = new Date().toISOString();
    const containers = Array.isArray(pod.spec?.containers) ? (pod.spec.containers as { name: string; image?: string }[]) : [];
    const condition = (type: string): Record<string, string> => ({
      type,
      status: ready || (type !== 'Ready' && type !== 'ContainersReady') ? 'True' : 'False',
      lastTransitionTime: now,
    });
    await this.api.patch(`${path}/status`, {
      status: {
        phase: 'Running',
        hostIP: this.address,
        hostIPs: [{ ip: this.address }],
        podIP: ip,
        podIPs: [{ ip }],
        startTime: now,
        conditions: ['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready', 'PodScheduled'].map(condition),
        containerStatuses: containers.map((container) => ({
          name: container.name,
          image: container.image ?? '',
          imageID: '',
          ready,
          started: true,
          restartCount: 0,
          state: { running: { startedAt: now } },
        })),
      },
    });
  }
}
