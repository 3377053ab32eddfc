import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { run } from '../lib/exec.js';
import { KubeApi, type KubeCredentials } from './kube-api.js';
import { kubeBinaries, type KubeBinaries } from './kube-binaries.js';
import { LabNode } from './kube-node.js';
import { checkSubjectValue, Pki, type KeyPair } from './kube-pki.js';
import { Lab, stopProcessGroup, waitFor, type LabProcess } from './netns.js';

/**
 * A real Kubernetes control plane for tests and the lab: etcd, kube-apiserver (RBAC, client
 * certificates, an audit log), kube-controller-manager (namespace, garbage-collector, endpoints,
 * endpointslice, serviceaccount and token controllers, ...) and kube-scheduler, all on one address
 * (127.0.0.1 unless told otherwise) with ports found free at start, plus one Node (lab/kube-node.ts).
 * Keys and certificates are made per run in a private temporary folder. stop() ends every process
 * and removes the folder; so does the end of this program (exit, Ctrl-C, a crash), unless the
 * control plane was started to be kept (`npm run cluster -- up`).
 */

export const SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/16';
/** The first address of the range: the `kubernetes` Service's cluster IP. */
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
export const ADMIN_USER = 'lab-admin';

const CONTROLLERS = [
  'namespace-controller',
  'garbage-collector-controller',
  'endpoints-controller',
  'endpointslice-controller',
  'endpointslice-mirroring-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'pod-garbage-collector-controller',
];

export interface ControlPlaneOptions {
  binaries?: KubeBinaries;
  /** Address every component listens on (default 127.0.0.1); another one lets pods in network namespaces reach the API. */
  bindAddress?: string;
  /**
   * Where the rest of a lab reaches the API server, when not at the bind address (something else
   * relays that address to it, as a load balancer in front of the API servers would): it is in
   * the serving certificate, and the `kubernetes` Service leads there.
   */
  advertiseAddress?: string;
  /**
   * The lab node: its InternalIP (default: the bind address), and whether this control plane
   * finishes the deletion of its pods (default true; false when the lab node that runs the
   * pods does it once they have stopped, as kubelet does).
   */
  node?: { address?: string; finishPodDeletions?: boolean };
  /** Processes outlive this program (a control plane left running); stop() still ends them. */
  keep?: boolean;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /**
   * At most this many endpoints per EndpointSlice (kube-controller-manager's default: 100). A
   * small value makes every service with more pods than that have several slices.
   */
  maxEndpointsPerSlice?: number;
}

/**
 * How to reach a running control plane, from this program or another one (a test worker, `npm
 * run cluster -- down`): plain data, written as JSON for a control plane left running.
 */
export interface ControlPlaneInfo {
  /** The run's private folder: certificates, kubeconfigs, etcd's data, logs. */
  dir: string;
  /** https://ADDRESS:PORT */
  server: string;
  adminKubeconfig: string;
  caFile: string;
  admin: KeyPair;
  /** The API server's audit log: one JSON event per request. */
  auditLog: string;
  node: { name: string; address: string };
  kubernetesVersion: string;
  etcdVersion: string;
  /** Where kubectl and the control-plane binaries are. */
  kubernetesBinDir: string;
  /** Process groups to end (a control plane left running). */
  pids: number[];
}

/** A TCP port nobody listens on at `address` right now. */
export async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, address, () => {
      const bound = server.address();
      const port = typeof bound === 'object' && bound ? bound.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function kubeconfig(server: string, caFile: string, user: string, pair: KeyPair): string {
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'lab', cluster: { server, 'certificate-authority': caFile } }],
      users: [{ name: user, user: { 'client-certificate': pair.certFile, 'client-key': pair.keyFile } }],
      contexts: [{ name: `${user}@lab`, context: { cluster: 'lab', user } }],
      'current-context': `${user}@lab`,
    },
    null,
    2,
  )}\n`;
}

const AUDIT_POLICY = { apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'], rules: [{ level: 'Metadata' }] };

export interface AuditEvent {
  verb: string;
  user: { username: string; groups?: string[] };
  requestURI: string;
  objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  stageTimestamp?: string;
}

/** Access to a running control plane (from any program): admin API, user kubeconfigs, the audit log, the lab node. */
export class ClusterAccess {
  readonly admin: KubeApi;
  readonly node: LabNode;

  constructor(readonly info: ControlPlaneInfo) {
    this.admin = new KubeApi({ server: info.server, caFile: info.caFile, ...info.admin });
    this.node = LabNode.attach(this.admin, info.node);
  }

  /** kubectl of the control plane's version. */
  get kubectl(): string {
    return path.join(this.info.kubernetesBinDir, 'kubectl');
  }

  /** The credentials of a client certificate for `user` in `groups`, signed by the cluster's CA. */
  async userCredentials(user: string, groups: readonly string[] = []): Promise<KubeCredentials> {
    checkSubjectValue(user, 'user name');
    const pki = Pki.open(path.dirname(this.info.caFile));
    const pair = await pki.issue(`user-${user.replaceAll(':', '_')}`, { commonName: user, organizations: groups }, { client: true });
    return { server: this.info.server, caFile: this.info.caFile, ...pair };
  }

  /**
   * A kubeconfig file for `user` in `groups` (a client certificate signed by the cluster's CA),
   * for the API server at `server` (default: where this program reaches it).
   */
  async userKubeconfig(user: string, groups: readonly string[] = [], server = this.info.server): Promise<string> {
    const credentials = await this.userCredentials(user, groups);
    const suffix = server === this.info.server ? '' : `@${new URL(server).hostname}`;
    const file = path.join(this.info.dir, `${user.replaceAll(':', '_')}${suffix}.kubeconfig`);
    fs.writeFileSync(file, kubeconfig(server, this.info.caFile, user, credentials), { mode: 0o600 });
    return file;
  }

  /** The `kubectl version` of client and server, as kubectl reports them. */
  async version(): Promise<{ client: string; server: string }> {
    const result = await run(this.kubectl, ['version', '-o', 'json', '--kubeconfig', this.info.adminKubeconfig]);
    const parsed = JSON.parse(result.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    return { client: parsed.clientVersion.gitVersion, server: parsed.serverVersion.gitVersion };
  }

  /** The audit log's events so far (one per request, with user, verb and object). */
  auditEvents(): AuditEvent[] {
    if (!fs.existsSync(this.info.auditLog)) return [];
    return fs
      .readFileSync(this.info.auditLog, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditEvent);
  }

  close(): void {
    this.admin.close();
  }
}

export class ControlPlane {
  private forgetOnExit: () => void = () => undefined;

  private constructor(
    private readonly lab: Lab,
    readonly info: ControlPlaneInfo,
    readonly access: ClusterAccess,
    private readonly node: LabNode,
    private readonly nodeApi: KubeApi,
  ) {}

  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const binaries = options.binaries ?? kubeBinaries();
    const address = options.bindAddress ?? '127.0.0.1';
    if (!net.isIPv4(address)) throw new Error(`bind address ${JSON.stringify(address)} is not an IPv4 address`);
    const advertised = options.advertiseAddress ?? address;
    if (!net.isIPv4(advertised)) throw new Error(`advertise address ${JSON.stringify(advertised)} is not an IPv4 address`);
    const nodeAddress = options.node?.address ?? address;
    const log = options.log ?? (() => undefined);
    const lab = new Lab('k8xcp');
    const processes: LabProcess[] = [];
    // Until stop() or detach(), the end of this program (exit, or a signal turned into exit) removes everything.
    const removeOnExit = ControlPlane.removeOnExit(lab, processes);
    let node: LabNode | undefined;
    let admin: KubeApi | undefined;
    try {
      const dir = lab.tempDir;
      fs.chmodSync(dir, 0o700);
      const logs = path.join(dir, 'logs');
      fs.mkdirSync(logs);
      const spawn = (name: string, argv: string[]): LabProcess => {
        // Unless kept, the kernel ends each process when this program ends, however it ends.
        const command = options.keep ? argv : ['setpriv', '--pdeathsig', 'KILL', '--', ...argv];
        const handle = lab.spawn(undefined, command, { logFile: path.join(logs, `${name}.log`) });
        processes.push(handle);
        return handle;
      };
      log(`files in ${dir}`);
      log('certificates and keys (openssl)');
      const pki = await Pki.create(path.join(dir, 'pki'));
      const serving = await pki.issue('kube-apiserver', { commonName: 'kube-apiserver' }, {
        server: {
          ips: [...new Set([address, advertised, '127.0.0.1', KUBERNETES_SERVICE_IP])],
          dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
        },
      });
      const adminPair = await pki.issue(ADMIN_USER, { commonName: ADMIN_USER, organizations: ['system:masters'] }, { client: true });
      const managerPair = await pki.issue('kube-controller-manager', { commonName: 'system:kube-controller-manager' }, { client: true });
      const schedulerPair = await pki.issue('kube-scheduler', { commonName: 'system:kube-scheduler' }, { client: true });
      const serviceAccount = await pki.serviceAccountKeys();

      const [etcdPort, etcdPeerPort, apiPort] = [await freePort(address), await freePort(address), await freePort(address)];
      const etcdUrl = `http://${address}:${etcdPort}`;
      log(`etcd ${binaries.etcdVersion} on ${etcdUrl}`);
      const etcd = spawn('etcd', [
        binaries.path('etcd'),
        '--name', 'lab',
        '--data-dir', path.join(dir, 'etcd'),
        '--listen-client-urls', etcdUrl,
        '--advertise-client-urls', etcdUrl,
        '--listen-peer-urls', `http://${address}:${etcdPeerPort}`,
        '--initial-advertise-peer-urls', `http://${address}:${etcdPeerPort}`,
        '--initial-cluster', `lab=http://${address}:${etcdPeerPort}`,
        '--unsafe-no-fsync',
        '--log-level', 'warn',
      ]);
      await waitFor(
        async () => {
          if (etcd.child.exitCode !== null) throw new Error(`etcd exited:\n${tail(etcd.output())}`);
          const answer = await fetch(`${etcdUrl}/health`).then((response) => response.text()).catch(() => '');
          return answer.includes('"health":"true"') ? true : undefined;
        },
        30_000,
        'etcd to be healthy',
        etcd,
      );

      const server = `https://${address}:${apiPort}`;
      const auditLog = path.join(logs, 'audit.jsonl');
      const auditPolicy = path.join(dir, 'audit-policy.json');
      fs.writeFileSync(auditPolicy, JSON.stringify(AUDIT_POLICY));
      log(`kube-apiserver ${binaries.kubernetesVersion} on ${server}`);
      const apiserver = spawn('kube-apiserver', [
        binaries.path('kube-apiserver'),
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${address}`,
        `--advertise-address=${advertised}`,
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${serving.certFile}`,
        `--tls-private-key-file=${serving.keyFile}`,
        `--client-ca-file=${pki.ca.certFile}`,
        '--authorization-mode=Node,RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${serviceAccount.publicKeyFile}`,
        `--service-account-signing-key-file=${serviceAccount.privateKeyFile}`,
        `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
        // On loopback the `kubernetes` Service cannot get valid endpoints; elsewhere it leads here.
        `--endpoint-reconciler-type=${advertised.startsWith('127.') ? 'none' : 'lease'}`,
        // The forwarder pods are privileged, as in any cluster that runs them.
        '--allow-privileged=true',
        `--audit-policy-file=${auditPolicy}`,
        `--audit-log-path=${auditLog}`,
        '--audit-log-mode=blocking',
        '--profiling=false',
      ]);
      const adminKubeconfig = path.join(dir, 'admin.kubeconfig');
      fs.writeFileSync(adminKubeconfig, kubeconfig(server, pki.ca.certFile, ADMIN_USER, adminPair), { mode: 0o600 });
      const api = new KubeApi({ server, caFile: pki.ca.certFile, ...adminPair });
      admin = api;
      await waitFor(
        async () => {
          if (apiserver.child.exitCode !== null) throw new Error(`kube-apiserver exited:\n${tail(apiserver.output())}`);
          const ready = await api.request<unknown>('GET', '/readyz', undefined, { timeoutMs: 5000 }).then(() => true).catch(() => undefined);
          return ready;
        },
        120_000,
        'kube-apiserver to be ready',
        apiserver,
      );

      const managerKubeconfig = path.join(dir, 'kube-controller-manager.kubeconfig');
      fs.writeFileSync(managerKubeconfig, kubeconfig(server, pki.ca.certFile, 'system:kube-controller-manager', managerPair), { mode: 0o600 });
      const schedulerKubeconfig = path.join(dir, 'kube-scheduler.kubeconfig');
      fs.writeFileSync(schedulerKubeconfig, kubeconfig(server, pki.ca.certFile, 'system:kube-scheduler', schedulerPair), { mode: 0o600 });
      log(`kube-controller-manager (${CONTROLLERS.length} controllers) and kube-scheduler`);
      const manager = spawn('kube-controller-manager', [
        binaries.path('kube-controller-manager'),
        `--kubeconfig=${managerKubeconfig}`,
        '--leader-elect=false',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${serviceAccount.privateKeyFile}`,
        `--root-ca-file=${pki.ca.certFile}`,
        `--controllers=${CONTROLLERS.join(',')}`,
        ...(options.maxEndpointsPerSlice === undefined ? [] : [`--max-endpoints-per-slice=${options.maxEndpointsPerSlice}`]),
        `--bind-address=${address}`,
        '--secure-port=0',
      ]);
      spawn('kube-scheduler', [
        binaries.path('kube-scheduler'),
        `--kubeconfig=${schedulerKubeconfig}`,
        '--leader-elect=false',
        `--bind-address=${address}`,
        '--secure-port=0',
      ]);

      node = await LabNode.register(api, { address: nodeAddress, onError: log });
      if (options.node?.finishPodDeletions !== false) node.start();
      log(`node ${node.name} registered`);
      // The serviceaccount controller makes `default` in every namespace; pods wait for it.
      await waitFor(
        () => api.find('/api/v1/namespaces/default/serviceaccounts/default'),
        60_000,
        'kube-controller-manager to create the default ServiceAccount',
        manager,
      );
      const info: ControlPlaneInfo = {
        dir,
        server,
        adminKubeconfig,
        caFile: pki.ca.certFile,
        admin: adminPair,
        auditLog,
        node: { name: node.name, address: nodeAddress },
        kubernetesVersion: binaries.kubernetesVersion,
        etcdVersion: binaries.etcdVersion,
        kubernetesBinDir: binaries.kubernetesBinDir,
        pids: processes.map((handle) => handle.child.pid ?? 0).filter((pid) => pid > 0),
      };
      const plane = new ControlPlane(lab, info, new ClusterAccess(info), node, api);
      plane.forgetOnExit = () => process.off('exit', removeOnExit);
      return plane;
    } catch (error) {
      await node?.stop();
      admin?.close();
      await lab.cleanup();
      process.off('exit', removeOnExit);
      throw error;
    }
  }

  /** Kills every process and removes the folder when this program exits without stop() or detach(). */
  private static removeOnExit(lab: Lab, processes: readonly LabProcess[]): () => void {
    const handler = (): void => {
      for (const handle of processes) {
        try {
          if (handle.child.pid !== undefined) process.kill(-handle.child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      fs.rmSync(lab.tempDir, { recursive: true, force: true });
    };
    process.on('exit', handler);
    return handler;
  }

  /**
   * Lets the processes outlive this program; ControlPlane.remove(info) ends them later. The lab
   * node stops finishing pod deletions here: `companion`, a program started beside them and kept
   * with them, can take that over (LabNode.attach(...).start()).
   */
  async detach(options: { companion?: readonly string[] } = {}): Promise<ControlPlaneInfo> {
    await this.stopNode();
    if (options.companion) this.lab.spawn(undefined, options.companion, { logFile: path.join(this.info.dir, 'logs', 'companion.log') });
    this.forgetOnExit();
    const pids = this.lab.detachAll();
    return { ...this.info, pids };
  }

  /** Ends every process (scheduler and controllers first, etcd last) and removes the folder. */
  async stop(): Promise<void> {
    await this.stopNode();
    await this.lab.cleanup();
    this.forgetOnExit();
  }

  private async stopNode(): Promise<void> {
    await this.node.stop();
    this.nodeApi.close();
    this.access.close();
  }

  /** Removes a control plane left running (detach): its processes and its folder. */
  static async remove(info: Pick<ControlPlaneInfo, 'dir' | 'pids'>): Promise<void> {
    await Promise.all(info.pids.map((pid) => stopProcessGroup(pid)));
    fs.rmSync(info.dir, { recursive: true, force: true });
  }
}

function tail(text: string, lines = 20): string {
  return text.split('\n').slice(-lines).join('\n');
}
