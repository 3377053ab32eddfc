import fs from 'node:fs';
import https from 'node:https';

/**
 * A small client for the lab's kube-apiserver, for what the lab does as an administrator or as
 * the node (register a Node, report pod status, finish pod deletions, wait for objects): JSON over
 * HTTPS with a client certificate, and watches as streams of JSON lines. The product itself talks
 * to Kubernetes only through kubectl.
 */

export interface KubeCredentials {
  /** https://HOST:PORT */
  server: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${path}: HTTP ${status}: ${KubeApiError.reason(body)}`);
  }

  private static reason(body: string): string {
    try {
      const status = JSON.parse(body) as { message?: unknown };
      if (typeof status.message === 'string') return status.message;
    } catch {
      /* not a Status object */
    }
    return body.slice(0, 300);
  }
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObjectJson;
}

export interface KubeObjectJson {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface KubeList<T = KubeObjectJson> {
  metadata: { resourceVersion?: string };
  items: T[];
}

export type PatchType = 'strategic' | 'merge' | 'json';
const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  strategic: 'application/strategic-merge-patch+json',
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
};

export class KubeApi {
  private readonly agent: https.Agent;
  private readonly url: URL;

  constructor(readonly credentials: KubeCredentials) {
    this.url = new URL(credentials.server);
    this.agent = new https.Agent({
      ca: fs.readFileSync(credentials.caFile),
      cert: fs.readFileSync(credentials.certFile),
      key: fs.readFileSync(credentials.keyFile),
      keepAlive: true,
    });
  }

  /** One request; a status outside 2xx throws a KubeApiError with the server's message. */
  request<T = unknown>(method: string, path: string, body?: unknown, options: { contentType?: string; timeoutMs?: number } = {}): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const request = https.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          path,
          method,
          agent: this.agent,
          timeout: options.timeoutMs ?? 30_000,
          headers: {
            accept: 'application/json',
            ...(payload === undefined ? {} : { 'content-type': options.contentType ?? 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            if (status < 200 || status > 299) {
              reject(new KubeApiError(method, path, status, text));
              return;
            }
            // Health endpoints answer plain text; everything else JSON.
            if (!String(response.headers['content-type']).includes('json')) {
              resolve(text as T);
              return;
            }
            try {
              resolve(JSON.parse(text) as T);
            } catch (error) {
              reject(error);
            }
          });
          response.on('error', reject);
        },
      );
      request.on('timeout', () => request.destroy(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 30_000} ms`)));
      request.on('error', reject);
      request.end(payload);
    });
  }

  get<T = KubeObjectJson>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** GET that answers undefined for a missing object. */
  async find<T = KubeObjectJson>(path: string): Promise<T | undefined> {
    try {
      return await this.get<T>(path);
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  post<T = KubeObjectJson>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  patch<T = KubeObjectJson>(path: string, body: unknown, type: PatchType = 'strategic'): Promise<T> {
    return this.request<T>('PATCH', path, body, { contentType: PATCH_CONTENT_TYPES[type] });
  }

  /** DELETE that treats a missing object as deleted. */
  async delete(path: string, options: Record<string, unknown> = {}): Promise<void> {
    try {
      await this.request('DELETE', path, { apiVersion: 'v1', kind: 'DeleteOptions', ...options });
    } catch (error) {
      if (!(error instanceof KubeApiError && error.status === 404)) throw error;
    }
  }

  /**
   * Streams the events of a watch (`path` is a collection with its query, without `watch=`), from
   * `resourceVersion` on, until the server ends it or `signal` aborts. Resolves when it ends.
   */
  watch(path: string, resourceVersion: string | undefined, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const separator = path.includes('?') ? '&' : '?';
    const query = `watch=1${resourceVersion ? `&resourceVersion=${encodeURIComponent(resourceVersion)}` : ''}`;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const request = https.request(
        { host: this.url.hostname, port: this.url.port, path: `${path}${separator}${query}`, method: 'GET', agent: this.agent, signal },
        (response) => {
          if ((response.statusCode ?? 0) !== 200) {
            let text = '';
            response.on('data', (chunk: Buffer) => (text += chunk.toString()));
            response.on('end', () => reject(new KubeApiError('WATCH', path, response.statusCode ?? 0, text)));
            return;
          }
          let buffered = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            buffered += chunk;
            let newline: number;
            while ((newline = buffered.indexOf('\n')) >= 0) {
              const line = buffered.slice(0, newline).trim();
              buffered = buffered.slice(newline + 1);
              if (line !== '') onEvent(JSON.parse(line) as WatchEvent);
            }
          });
          response.on('end', () => resolve());
          response.on('error', () => resolve());
        },
      );
      request.on('error', (error) => (signal.aborted ? resolve() : reject(error)));
      request.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
