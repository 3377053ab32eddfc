import fs from 'node:fs';
import path from 'node:path';
import { writeVolume, type VolumeFile } from './configmap.js';
import type { KubeApi, KubeObjectJson } from './kube-api.js';

/**
 * The volumes of a pod as kubelet materialises them, for the lab node: ConfigMap, Secret and
 * projected volumes (the ServiceAccount token through the TokenRequest API, the cluster's CA from
 * the `kube-root-ca.crt` ConfigMap, the namespace from the downward API) written with kubelet's
 * atomic writer (lab/configmap.ts), and emptyDir. Each volume is a folder under the pod's folder.
 */

const encode = encodeURIComponent;

export interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

export interface VolumeSpec {
  name: string;
  configMap?: { name: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  projected?: {
    defaultMode?: number;
    sources: {
      serviceAccountToken?: { path: string; expirationSeconds?: number; audience?: string };
      configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
      downwardAPI?: { items: { path: string; fieldRef?: { fieldPath: string }; mode?: number }[] };
    }[];
  };
  emptyDir?: Record<string, unknown>;
}

export class VolumeError extends Error {
  override name = 'VolumeError';
}

/** What a volume's files are made from: the pod and the API. */
export interface PodForVolumes {
  metadata: { name: string; namespace: string; uid: string };
  spec: { serviceAccountName?: string; nodeName?: string };
}

/** The files of one key list: every key when `items` is absent, else the listed keys at their paths. */
function keyFiles(data: Record<string, string | Buffer>, items: KeyToPath[] | undefined, mode: number, what: string): VolumeFile[] {
  if (items === undefined) return Object.entries(data).map(([key, content]) => ({ path: key, content, mode }));
  return items.map((item) => {
    const content = data[item.key];
    if (content === undefined) throw new VolumeError(`${what} has no key ${item.key}`);
    return { path: item.path, content, mode: item.mode ?? mode };
  });
}

/** The data of a ConfigMap (text and binary keys), or undefined when it does not exist. */
async function configMapData(api: KubeApi, namespace: string, name: string): Promise<Record<string, string | Buffer> | undefined> {
  const object = await api.find<KubeObjectJson & { data?: Record<string, string>; binaryData?: Record<string, string> }>(
    `/api/v1/namespaces/${encode(namespace)}/configmaps/${encode(name)}`,
  );
  if (object === undefined) return undefined;
  const binary = Object.fromEntries(Object.entries(object.binaryData ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]));
  return { ...(object.data ?? {}), ...binary };
}

async function secretData(api: KubeApi, namespace: string, name: string): Promise<Record<string, Buffer> | undefined> {
  const object = await api.find<KubeObjectJson & { data?: Record<string, string> }>(`/api/v1/namespaces/${encode(namespace)}/secrets/${encode(name)}`);
  if (object === undefined) return undefined;
  return Object.fromEntries(Object.entries(object.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]));
}

/** A ServiceAccount token bound to the pod, as kubelet requests it for a projected volume. */
async function serviceAccountToken(api: KubeApi, pod: PodForVolumes, source: { expirationSeconds?: number; audience?: string }): Promise<string> {
  const account = pod.spec.serviceAccountName ?? 'default';
  const response = await api.post<{ status?: { token?: string } }>(
    `/api/v1/namespaces/${encode(pod.metadata.namespace)}/serviceaccounts/${encode(account)}/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: source.audience ? [source.audience] : [],
        expirationSeconds: source.expirationSeconds ?? 3607,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
      },
    },
  );
  const token = response.status?.token;
  if (!token) throw new VolumeError(`the TokenRequest for ServiceAccount ${pod.metadata.namespace}/${account} returned no token`);
  return token;
}

function fieldValue(pod: PodForVolumes, fieldPath: string): string {
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace;
    case 'metadata.uid':
      return pod.metadata.uid;
    default:
      throw new VolumeError(`the lab node does not provide the field ${fieldPath} in a downward API volume`);
  }
}

/** The files a volume holds now (reading the API), or undefined for a volume with no files (emptyDir). */
export async function volumeFiles(api: KubeApi, pod: PodForVolumes, volume: VolumeSpec): Promise<VolumeFile[] | undefined> {
  const namespace = pod.metadata.namespace;
  if (volume.configMap) {
    const source = volume.configMap;
    const data = await configMapData(api, namespace, source.name);
    if (data === undefined) {
      if (source.optional) return [];
      throw new VolumeError(`configmap ${namespace}/${source.name} not found`);
    }
    return keyFiles(data, source.items, source.defaultMode ?? 0o644, `configmap ${namespace}/${source.name}`);
  }
  if (volume.secret) {
    const source = volume.secret;
    const data = await secretData(api, namespace, source.secretName);
    if (data === undefined) {
      if (source.optional) return [];
      throw new VolumeError(`secret ${namespace}/${source.secretName} not found`);
    }
    return keyFiles(data, source.items, source.defaultMode ?? 0o644, `secret ${namespace}/${source.secretName}`);
  }
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    const files: VolumeFile[] = [];
    for (const source of volume.projected.sources) {
      if (source.serviceAccountToken) {
        // kubelet writes the token readable by the owner only unless told otherwise.
        files.push({ path: source.serviceAccountToken.path, content: await serviceAccountToken(api, pod, source.serviceAccountToken), mode: volume.projected.defaultMode ?? 0o600 });
      } else if (source.configMap) {
        const data = await configMapData(api, namespace, source.configMap.name);
        if (data === undefined && !source.configMap.optional) throw new VolumeError(`configmap ${namespace}/${source.configMap.name} not found`);
        files.push(...keyFiles(data ?? {}, source.configMap.items, mode, `configmap ${namespace}/${source.configMap.name}`));
      } else if (source.downwardAPI) {
        for (const item of source.downwardAPI.items) {
          if (!item.fieldRef) throw new VolumeError(`the lab node supports only fieldRef items in a downward API volume (${item.path})`);
          files.push({ path: item.path, content: fieldValue(pod, item.fieldRef.fieldPath), mode: item.mode ?? mode });
        }
      } else {
        throw new VolumeError(`volume ${volume.name}: a projected source the lab node does not support`);
      }
    }
    return files;
  }
  if (volume.emptyDir) return undefined;
  throw new VolumeError(`volume ${volume.name}: a kind the lab node does not support (configMap, secret, projected and emptyDir are)`);
}

/** Where a pod's volume lives: <pod folder>/volumes/<name>. */
export function volumeDir(podDir: string, name: string): string {
  return path.join(podDir, 'volumes', name);
}

/**
 * Writes a volume (`initial`) or refreshes it; returns whether its files changed. A projected volume
 * with a ServiceAccount token is written once: its token is valid for an hour, longer than a lab
 * runs (kubelet rotates it at 80% of its lifetime).
 */
export async function syncVolume(api: KubeApi, pod: PodForVolumes, podDir: string, volume: VolumeSpec, options: { initial: boolean }): Promise<boolean> {
  const dir = volumeDir(podDir, volume.name);
  if (!options.initial && volume.projected?.sources.some((source) => source.serviceAccountToken)) return false;
  const files = await volumeFiles(api, pod, volume);
  if (files === undefined) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o777 });
    return false;
  }
  return writeVolume(dir, files);
}
