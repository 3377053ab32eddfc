import fs from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../lib/errors.js';
import type { ContainerInitSpec } from './container-init.js';
import { KubeApiError, type KubeApi, type KubeList, type KubeObjectJson } from './kube-api.js';
import { PACKAGE_ROOT, type Lab, type LabProcess } from './netns.js';
import { containerArgv, type ContainerSpec } from './pod-images.js';
import { syncVolume, volumeDir, type VolumeSpec } from './pod-volumes.js';

/**
 * The lab node's kubelet (test infrastructure, not product): it runs the pods that the scheduler
 * binds to its Node, on this machine, as kubelet would with a container runtime.
 * - Watches the pods bound to the node through the API (a list, then a watch, started again when
 *   it ends).
 * - A pod is a network namespace (`<prefix>p<first 8 characters of its uid>`) on the node's pod
 *   bridge, with the lowest free address of the node's pod CIDR.
 * - Its volumes are written as kubelet writes them (lab/pod-volumes.ts), and refreshed every
 *   volume sync period with up to 50% jitter, as kubelet's pod workers resync: a ConfigMap change
 *   reaches the volume only then (about a minute by default, as in a real cluster).
 * - Each container runs as PID 1 of its own PID and mount namespace in the pod's network
 *   namespace (lab/container-init.ts), with the pod's environment (plus what kubelet adds: the
 *   `kubernetes` Service's address, HOSTNAME, PATH, HOME), its volume mounts, and full
 *   capabilities only when privileged. Its output goes to a log file, as `kubectl logs` shows it.
 * - Status goes through the pods/status subresource: podIP, phase Running, the Ready condition and
 *   each container's state; an exited container is restarted after kubelet's back-off (10 s
 *   doubling to 5 min) unless the pod's restartPolicy says otherwise.
 * - A deleted pod is stopped (SIGTERM, then SIGKILL after its grace period), its namespace and
 *   folder removed, and its deletion finished (grace period 0), as kubelet does.
 */

const encode = encodeURIComponent;

export interface KubeletOptions {
  api: KubeApi;
  nodeName: string;
  /** Makes the pods' network namespaces (its prefix names them) and runs their containers. */
  lab: Lab;
  /** The pods' folders; not under /etc, /root or /run, which containers see through layers of their own. */
  rootDir: string;
  /** The node's network namespace, its pod bridge, pod CIDR (a /24) and the bridge's address; its own address (hostIP). */
  network: { nodeNetns: string; bridge: string; podCidr: string; gateway: string; nodeAddress: string };
  /** The `kubernetes` Service, as kubelet puts it in every container's environment. */
  apiService: { host: string; port: number };
  /** kubelet's --sync-frequency (default 1 min): how often a pod's volumes are refreshed. */
  volumeSyncPeriodMs: number;
  /** Pods cannot reach the API server (a REJECT rule in each pod's network namespace). */
  blockApi?: boolean;
  /** PATH in the containers (the "image" has kubectl, node, ssh and iptables). */
  containerPath: string;
  /** Environment every "image" sets (as a Dockerfile's ENV): the pod's own env overrides it. */
  imageEnv?: Record<string, string>;
  log: (line: string) => void;
}

interface PodJson extends KubeObjectJson {
  metadata: KubeObjectJson['metadata'] & { name: string; namespace: string; uid: string };
  spec: {
    nodeName?: string;
    serviceAccountName?: string;
    restartPolicy?: 'Always' | 'OnFailure' | 'Never';
    terminationGracePeriodSeconds?: number;
    volumes?: VolumeSpec[];
    containers: (ContainerSpec & {
      env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
      volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
      securityContext?: { privileged?: boolean };
    })[];
  };
  status?: { phase?: string };
}

type ContainerState =
  | { running: { startedAt: string } }
  | { waiting: { reason: string; message?: string } }
  | { terminated: { exitCode: number; reason: string; startedAt: string; finishedAt: string } };

interface ContainerRuntime {
  name: string;
  image: string;
  handle?: LabProcess;
  state: ContainerState;
  lastState?: ContainerState;
  restarts: number;
  restartTimer?: NodeJS.Timeout;
}

interface PodRuntime {
  pod: PodJson;
  netns: string;
  ip: string;
  dir: string;
  startTime: string;
  containers: Map<string, ContainerRuntime>;
  volumeTimer?: NodeJS.Timeout;
  stopping: boolean;
}

/** The network namespace of a pod on the lab node. */
export function podNetnsName(prefix: string, uid: string): string {
  return `${prefix}p${uid.replaceAll('-', '').slice(0, 8)}`;
}

/**
 * The container's first process: the child that `unshare --fork` (pid `unsharePid`) started, or
 * undefined when it has none (yet, or any more).
 */
export function containerInitPid(unsharePid: number): number | undefined {
  try {
    const children = fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return children.length > 0 ? Number(children[0]) : undefined;
  } catch {
    return undefined;
  }
}

/** A pod's folder on the lab node. */
export function podDir(rootDir: string, uid: string): string {
  return path.join(rootDir, 'pods', uid);
}

/** Where the lab node writes a container's output (what `kubectl logs` would show). */
export function containerLogFile(rootDir: string, uid: string, container: string): string {
  return path.join(podDir(rootDir, uid), 'containers', `${container}.log`);
}

const CONTAINER_INIT = path.join(PACKAGE_ROOT, 'dist', 'lab', 'container-init.js');
/** kubelet's container restart back-off. */
const BACKOFF = { firstMs: 10_000, maxMs: 300_000 };

/** The first four octets of an IPv4 /24 CIDR's network, e.g. 10.244.0. */
function cidrPrefix(cidr: string): string {
  const match = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(cidr);
  if (!match) throw new Error(`the lab node needs a /24 pod CIDR, not ${cidr}`);
  return match[1] as string;
}

export class LabKubelet {
  private readonly pods = new Map<string, PodRuntime>();
  /** Per pod uid, the chain of its lifecycle steps: they run one after another. */
  private readonly queues = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  private watcher: Promise<void> | undefined;

  constructor(private readonly options: KubeletOptions) {
    fs.mkdirSync(path.join(options.rootDir, 'pods'), { recursive: true, mode: 0o700 });
  }

  start(): void {
    this.watcher ??= this.watchPods();
  }

  /** Stops watching and stops every pod (the node goes away): namespaces and folders removed. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.watcher;
    await Promise.all([...this.queues.values()]);
    await Promise.all([...this.pods.keys()].map((uid) => this.enqueue(uid, () => this.teardown(uid))));
  }

  /** The pods it runs: namespace/name -> address and network namespace. */
  running(): { namespace: string; name: string; uid: string; ip: string; netns: string }[] {
    return [...this.pods.values()].map((runtime) => ({ namespace: runtime.pod.metadata.namespace, name: runtime.pod.metadata.name, uid: runtime.pod.metadata.uid, ip: runtime.ip, netns: runtime.netns }));
  }

  private enqueue(uid: string, step: () => Promise<void>): Promise<void> {
    const next = (this.queues.get(uid) ?? Promise.resolve()).then(step).catch((error: unknown) => this.options.log(`pod ${uid}: ${errorMessage(error)}`));
    this.queues.set(uid, next);
    void next.then(() => {
      if (this.queues.get(uid) === next) this.queues.delete(uid);
    });
    return next;
  }

  private async watchPods(): Promise<void> {
    const { api, nodeName, log } = this.options;
    const pods = `/api/v1/pods?fieldSelector=${encode(`spec.nodeName=${nodeName}`)}`;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        const list = await api.get<KubeList<PodJson>>(pods);
        const seen = new Set(list.items.map((pod) => pod.metadata.uid));
        for (const pod of list.items) this.observe(pod);
        for (const uid of this.pods.keys()) if (!seen.has(uid)) void this.enqueue(uid, () => this.teardown(uid));
        await api.watch(
          pods,
          list.metadata.resourceVersion,
          (event) => {
            const pod = event.object as PodJson;
            if (event.type === 'ADDED' || event.type === 'MODIFIED') this.observe(pod);
            else if (event.type === 'DELETED') void this.enqueue(pod.metadata.uid, () => this.teardown(pod.metadata.uid));
          },
          signal,
        );
      } catch (error) {
        if (signal.aborted) break;
        log(`kubelet: watching the pods of node ${nodeName}: ${errorMessage(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  /** Level-triggered: what to do with a pod as the API shows it now. */
  private observe(pod: PodJson): void {
    const uid = pod.metadata.uid;
    const runtime = this.pods.get(uid);
    if (runtime) runtime.pod = pod;
    if (pod.metadata.deletionTimestamp !== undefined) {
      void this.enqueue(uid, () => this.terminate(pod));
    } else if (runtime === undefined && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed') {
      void this.enqueue(uid, () => (this.pods.has(uid) || this.stopping.signal.aborted ? Promise.resolve() : this.startPod(pod)));
    }
  }

  private allocateAddress(): string {
    const prefix = cidrPrefix(this.options.network.podCidr);
    const used = new Set([this.options.network.gateway, ...[...this.pods.values()].map((runtime) => runtime.ip)]);
    for (let host = 2; host < 255; host++) {
      const ip = `${prefix}.${host}`;
      if (!used.has(ip)) return ip;
    }
    throw new Error(`no free address left in ${this.options.network.podCidr}`);
  }

  private async startPod(pod: PodJson): Promise<void> {
    const { lab, network, log } = this.options;
    const { uid, namespace, name } = pod.metadata;
    const netns = podNetnsName(lab.prefix, uid);
    const runtime: PodRuntime = {
      pod,
      netns,
      ip: this.allocateAddress(),
      dir: podDir(this.options.rootDir, uid),
      startTime: new Date().toISOString(),
      containers: new Map(),
      stopping: false,
    };
    this.pods.set(uid, runtime);
    log(`kubelet: starting pod ${namespace}/${name} (${runtime.ip}, netns ${netns})`);
    fs.mkdirSync(path.join(runtime.dir, 'containers'), { recursive: true, mode: 0o700 });
    // The pod's network: a namespace on the node's pod bridge.
    await lab.netns(netns.slice(lab.prefix.length));
    const hostSide = `vp${netns.slice(-8)}`;
    await lab.veth(network.nodeNetns, hostSide, netns, 'eth0');
    await lab.master(network.nodeNetns, hostSide, network.bridge);
    await lab.addr(netns, 'eth0', `${runtime.ip}/24`);
    await lab.route(netns, ['default', 'via', network.gateway]);
    if (this.options.blockApi) {
      const { host, port } = this.options.apiService;
      await lab.exec(netns, ['iptables', '-A', 'OUTPUT', '-d', host, '-p', 'tcp', '--dport', String(port), '-j', 'REJECT']);
    }
    for (const volume of pod.spec.volumes ?? []) await syncVolume(this.options.api, pod, runtime.dir, volume, { initial: true });
    for (const container of pod.spec.containers) this.startContainer(runtime, container);
    await this.reportStatus(runtime);
    this.scheduleVolumeSync(runtime);
  }

  private containerEnv(runtime: PodRuntime, container: PodJson['spec']['containers'][number]): Record<string, string> {
    const { pod } = runtime;
    const { host, port } = this.options.apiService;
    const env: Record<string, string> = {
      ...this.options.imageEnv,
      PATH: this.options.containerPath,
      HOME: '/root',
      HOSTNAME: pod.metadata.name,
      KUBERNETES_SERVICE_HOST: host,
      KUBERNETES_SERVICE_PORT: String(port),
      KUBERNETES_SERVICE_PORT_HTTPS: String(port),
      KUBERNETES_PORT: `tcp://${host}:${port}`,
      [`KUBERNETES_PORT_${port}_TCP`]: `tcp://${host}:${port}`,
      [`KUBERNETES_PORT_${port}_TCP_PROTO`]: 'tcp',
      [`KUBERNETES_PORT_${port}_TCP_PORT`]: String(port),
      [`KUBERNETES_PORT_${port}_TCP_ADDR`]: host,
    };
    const fields: Record<string, string | undefined> = {
      'metadata.name': pod.metadata.name,
      'metadata.namespace': pod.metadata.namespace,
      'metadata.uid': pod.metadata.uid,
      'spec.nodeName': pod.spec.nodeName,
      'spec.serviceAccountName': pod.spec.serviceAccountName,
      'status.podIP': runtime.ip,
      'status.hostIP': this.options.network.nodeAddress,
    };
    for (const variable of container.env ?? []) {
      if (variable.value !== undefined) env[variable.name] = variable.value;
      else if (variable.valueFrom?.fieldRef) {
        const value = fields[variable.valueFrom.fieldRef.fieldPath];
        if (value === undefined) throw new Error(`env ${variable.name}: the lab node does not provide ${variable.valueFrom.fieldRef.fieldPath}`);
        env[variable.name] = value;
      } else if (variable.valueFrom !== undefined) {
        throw new Error(`env ${variable.name}: the lab node supports only value and fieldRef`);
      } else {
        env[variable.name] = '';
      }
    }
    return env;
  }

  private startContainer(runtime: PodRuntime, container: PodJson['spec']['containers'][number]): void {
    const { lab, log } = this.options;
    const state: ContainerRuntime = runtime.containers.get(container.name) ?? { name: container.name, image: container.image ?? '', state: { waiting: { reason: 'ContainerCreating' } }, restarts: 0 };
    runtime.containers.set(container.name, state);
    let spec: ContainerInitSpec;
    try {
      const volumes = new Map((runtime.pod.spec.volumes ?? []).map((volume) => [volume.name, volume]));
      spec = {
        layersDir: path.join(runtime.dir, 'layers', container.name),
        mounts: (container.volumeMounts ?? []).map((mount) => {
          const volume = volumes.get(mount.name);
          if (volume === undefined) throw new Error(`volume mount ${mount.name}: no such volume`);
          if (mount.subPath !== undefined) throw new Error(`volume mount ${mount.name}: the lab node does not support subPath`);
          const readOnly = mount.readOnly === true || volume.configMap !== undefined || volume.secret !== undefined || volume.projected !== undefined;
          return { source: volumeDir(runtime.dir, mount.name), target: mount.mountPath, readOnly };
        }),
        argv: containerArgv(container, runtime.pod.metadata.name),
        env: this.containerEnv(runtime, container),
        privileged: container.securityContext?.privileged === true,
      };
    } catch (error) {
      state.state = { waiting: { reason: 'CreateContainerError', message: errorMessage(error) } };
      log(`kubelet: pod ${runtime.pod.metadata.namespace}/${runtime.pod.metadata.name} container ${container.name}: ${errorMessage(error)}`);
      return;
    }
    const specFile = path.join(runtime.dir, 'containers', `${container.name}.json`);
    fs.writeFileSync(specFile, JSON.stringify(spec, null, 2), { mode: 0o600 });
    const handle = lab.spawn(
      runtime.netns,
      ['unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child=SIGTERM', '--mount-proc', '--', process.execPath, CONTAINER_INIT, specFile],
      { logFile: containerLogFile(this.options.rootDir, runtime.pod.metadata.uid, container.name) },
    );
    state.handle = handle;
    const startedAt = new Date().toISOString();
    state.state = { running: { startedAt } };
    void handle.exited.then((code) => this.containerExited(runtime, container, state, code ?? -1, startedAt));
  }

  private async containerExited(runtime: PodRuntime, container: PodJson['spec']['containers'][number], state: ContainerRuntime, exitCode: number, startedAt: string): Promise<void> {
    if (runtime.stopping) return;
    const finishedAt = new Date().toISOString();
    state.handle = undefined;
    state.lastState = { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt } };
    const policy = runtime.pod.spec.restartPolicy ?? 'Always';
    const restart = policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
    this.options.log(`kubelet: pod ${runtime.pod.metadata.namespace}/${runtime.pod.metadata.name} container ${container.name} exited with code ${exitCode}${restart ? '' : ' (not restarted)'}`);
    if (!restart) {
      state.state = state.lastState;
      state.lastState = undefined;
      await this.enqueue(runtime.pod.metadata.uid, () => this.reportStatus(runtime));
      return;
    }
    const delay = Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** state.restarts);
    state.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${delay / 1000}s restarting failed container=${container.name}` } };
    await this.enqueue(runtime.pod.metadata.uid, () => this.reportStatus(runtime));
    state.restartTimer = setTimeout(() => {
      if (runtime.stopping) return;
      state.restarts++;
      this.startContainer(runtime, container);
      void this.enqueue(runtime.pod.metadata.uid, () => this.reportStatus(runtime));
    }, delay);
  }

  /** The pod's status as kubelet reports it (pods/status). */
  private status(runtime: PodRuntime): Record<string, unknown> {
    const containers = [...runtime.containers.values()];
    const allRunning = containers.length > 0 && containers.every((container) => 'running' in container.state);
    const allDone = containers.length > 0 && containers.every((container) => 'terminated' in container.state);
    const succeeded = allDone && containers.every((container) => 'terminated' in container.state && container.state.terminated.exitCode === 0);
    const phase = allDone ? (succeeded ? 'Succeeded' : 'Failed') : containers.some((container) => 'running' in container.state || container.restarts > 0) ? 'Running' : 'Pending';
    const now = new Date().toISOString();
    const condition = (type: string, ok: boolean): Record<string, string> => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now });
    return {
      phase,
      hostIP: this.options.network.nodeAddress,
      hostIPs: [{ ip: this.options.network.nodeAddress }],
      podIP: runtime.ip,
      podIPs: [{ ip: runtime.ip }],
      startTime: runtime.startTime,
      conditions: [
        condition('PodReadyToStartContainers', true),
        condition('Initialized', true),
        condition('ContainersReady', allRunning),
        condition('Ready', allRunning),
        condition('PodScheduled', true),
      ],
      containerStatuses: containers.map((container) => ({
        name: container.name,
        image: container.image,
        imageID: '',
        ready: 'running' in container.state,
        started: 'running' in container.state,
        restartCount: container.restarts,
        state: container.state,
        ...(container.lastState ? { lastState: container.lastState } : {}),
      })),
    };
  }

  private async reportStatus(runtime: PodRuntime): Promise<void> {
    if (runtime.stopping) return;
    const { namespace, name } = runtime.pod.metadata;
    await this.options.api.patch(`/api/v1/namespaces/${encode(namespace)}/pods/${encode(name)}/status`, { status: this.status(runtime) });
  }

  /** kubelet resyncs each pod every sync period plus up to 50% jitter; a volume changes only then. */
  private scheduleVolumeSync(runtime: PodRuntime): void {
    const delay = this.options.volumeSyncPeriodMs * (1 + Math.random() * 0.5);
    runtime.volumeTimer = setTimeout(() => {
      void this.enqueue(runtime.pod.metadata.uid, async () => {
        if (runtime.stopping) return;
        for (const volume of runtime.pod.spec.volumes ?? []) {
          try {
            if (await syncVolume(this.options.api, runtime.pod, runtime.dir, volume, { initial: false })) {
              this.options.log(`kubelet: pod ${runtime.pod.metadata.namespace}/${runtime.pod.metadata.name}: volume ${volume.name} updated`);
            }
          } catch (error) {
            this.options.log(`kubelet: pod ${runtime.pod.metadata.namespace}/${runtime.pod.metadata.name}: volume ${volume.name}: ${errorMessage(error)}`);
          }
        }
        this.scheduleVolumeSync(runtime);
      });
    }, delay);
  }

  /** A pod being deleted: stop it, clean up, then finish its deletion. */
  private async terminate(pod: PodJson): Promise<void> {
    const { uid, namespace, name } = pod.metadata;
    await this.teardown(uid, pod.spec.terminationGracePeriodSeconds);
    try {
      await this.options.api.delete(`/api/v1/namespaces/${encode(namespace)}/pods/${encode(name)}`, { gracePeriodSeconds: 0, preconditions: { uid } });
    } catch (error) {
      // 409: a new pod of that name replaced it already; 404: gone.
      if (!(error instanceof KubeApiError && error.status === 409)) throw error;
    }
  }

  /** Stops a pod's containers (SIGTERM, SIGKILL after the grace period) and removes its namespace and folder. */
  private async teardown(uid: string, graceSeconds = 30): Promise<void> {
    const runtime = this.pods.get(uid);
    if (runtime === undefined) return;
    runtime.stopping = true;
    clearTimeout(runtime.volumeTimer);
    this.options.log(`kubelet: stopping pod ${runtime.pod.metadata.namespace}/${runtime.pod.metadata.name}`);
    await Promise.all(
      [...runtime.containers.values()].map(async (container) => {
        clearTimeout(container.restartTimer);
        const pid = container.handle?.child.pid;
        if (container.handle === undefined || pid === undefined || container.handle.child.exitCode !== null) return;
        // As a container runtime does, SIGTERM goes to the container's first process (container-init,
        // which passes it on); unshare --fork itself blocks SIGTERM while it waits for that child.
        try {
          process.kill(containerInitPid(pid) ?? -pid, 'SIGTERM');
        } catch {
          return;
        }
        const timer = setTimeout(() => {
          this.options.log(
            `kubelet: pod ${runtime.pod.metadata.namespace}/${runtime.pod.metadata.name} container ${container.name} did not stop within its grace period (${graceSeconds} s): killing it`,
          );
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, graceSeconds * 1000);
        const code = await container.handle.exited;
        clearTimeout(timer);
        this.options.log(`kubelet: pod ${runtime.pod.metadata.namespace}/${runtime.pod.metadata.name} container ${container.name} ${code === null ? 'killed' : `exited with code ${code}`}`);
      }),
    );
    await this.options.lab.removeNetns(runtime.netns);
    fs.rmSync(runtime.dir, { recursive: true, force: true });
    this.pods.delete(uid);
  }
}
