import { setTimeout as delay } from 'node:timers/promises';
import { errorMessage } from '../lib/errors.js';
import { run, streamLines } from '../lib/exec.js';
import type { Logger } from '../lib/log.js';
import { applyWatchEvent, configMapCopy, describeTarget, kubectlArgs, parseWatchEvent, type ApiRules, type ConfigMapTarget } from './rules-source.js';

/**
 * The forwarder's watch of its own ConfigMap through the API: `kubectl get configmap NAME --watch`
 * with the pod's in-cluster configuration (its ServiceAccount may read that one ConfigMap). A
 * watch that ends or cannot start (the API cannot be reached, access denied, no such ConfigMap) is
 * started again, from 250 ms doubling up to `maxRetryMs`; meanwhile it is not live, and the
 * forwarder decides what to use (forwarder/rules-source.ts).
 */

export const FIRST_RETRY_MS = 250;

export class ConfigMapWatch {
  private current: ApiRules = { live: false };

  constructor(
    private readonly target: ConfigMapTarget,
    private readonly log: Logger,
    private readonly maxRetryMs: number,
  ) {}

  state(): ApiRules {
    return this.current;
  }

  /** Watches until `signal` aborts; `onChange` is called whenever state() changes. */
  async run(signal: AbortSignal, onChange: (reason: string) => void): Promise<void> {
    const what = describeTarget(this.target);
    let failures = 0;
    let reported = '';
    while (!signal.aborted) {
      const result = await streamLines('kubectl', kubectlArgs(this.target, true), {
        signal,
        onLine: (line) => {
          const event = parseWatchEvent(line, this.target.key);
          if (event === undefined) return;
          if (!this.current.live) this.log.info(`watching ${what} through the API`, { resourceVersion: event.resourceVersion });
          failures = 0;
          reported = '';
          this.current = applyWatchEvent(event);
          onChange(`${event.type} ${what} resourceVersion ${event.resourceVersion}`);
        },
      });
      if (signal.aborted) break;
      const why = firstLine(result.stderr) || `kubectl exited with code ${result.exitCode}`;
      if (this.current.live) {
        this.current = { ...this.current, live: false };
        onChange(`the watch of ${what} ended`);
      }
      failures++;
      const wait = Math.min(this.maxRetryMs, FIRST_RETRY_MS * 2 ** (failures - 1));
      // The same reason again (the API still unreachable) is not news.
      if (why !== reported) this.log.warn(`no watch of ${what} through the API; using the mounted data file meanwhile`, { error: why, retryIn: `${wait / 1000}s` });
      else this.log.debug(`still no watch of ${what}`, { error: why });
      reported = why;
      await delay(wait, undefined, { signal }).catch(() => undefined);
    }
  }
}

/** One read of the ConfigMap (for `--once` and `status`): live with its copy, or not live with the reason. */
export async function readConfigMapOnce(target: ConfigMapTarget, signal?: AbortSignal): Promise<ApiRules & { error?: string }> {
  try {
    const result = await run('kubectl', kubectlArgs(target, false), { signal, timeoutMs: 30_000, reject: false });
    if (!result.ok) return { live: false, error: firstLine(result.stderr) || `kubectl exited with code ${result.exitCode}` };
    const copy = configMapCopy(JSON.parse(result.stdout), target.key);
    if (copy === undefined) return { live: false, error: `kubectl get printed no ConfigMap for ${describeTarget(target)}` };
    return { live: true, copy };
  } catch (error) {
    return { live: false, error: firstLine(errorMessage(error)) };
  }
}

/**
 * The prefix klog puts before each of kubectl's own log lines: severity, date, time to the
 * microsecond, thread id, file:line (`E1203 06:41:02.123456   1234 memcache.go:265] `).
 */
const KLOG_PREFIX = /^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [^\]]+\] /;

/**
 * The first line of kubectl's error output that says something, without klog's prefix: its time
 * differs on every retry, and the same reason again must read as the same reason.
 */
export function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((line) => line.trim().replace(KLOG_PREFIX, '').trim())
      .find((line) => line !== '' && !line.startsWith('Warning:')) ?? ''
  );
}
