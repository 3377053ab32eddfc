import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { errorMessage, TerminalError } from './errors.js';
import type { Logger } from './log.js';

/**
 * The reconcile loop shared by the three components: level-triggered, never overlapping.
 * A cycle runs at start, every `intervalMs` (resync), soon after a watched path changes
 * (debounced), at once after another source of changes reports one, and sooner after a failure (backoff, capped at the interval). A watch event only
 * brings the next cycle forward: the cycle itself observes everything afresh.
 */

export interface ReconcileResult {
  /** Run again after this long instead of the interval. */
  requeueAfterMs?: number;
  /** The cycle changed something (ran actions); logged with the cycle's end. */
  changed?: boolean;
}

export type Reconcile = (signal: AbortSignal) => Promise<ReconcileResult | void>;

export interface WatchTarget {
  path: string;
  /**
   * 'file': watch the file's directory (so renames over it and ConfigMap `..data` symlink swaps
   * are seen) and react to the file and to `..`-prefixed entries only. 'dir': react to any entry
   * directly in the directory.
   */
  kind: 'file' | 'dir';
}

export interface LoopOptions {
  reconcile: Reconcile;
  log: Logger;
  intervalMs: number;
  signal: AbortSignal;
  watch?: readonly WatchTarget[];
  debounceMs?: number;
  /** First retry delay after a failure (default 250 ms); doubles up to intervalMs. */
  backoffMs?: number;
  /** Called after each cycle (tests use it to count cycles). */
  onCycle?: (outcome: { ok: boolean; error?: unknown; cycle: number }) => void;
  /**
   * A cheap check run every `everyMs` between cycles, for what no file watch can see (a process
   * that exited). When it answers true the next cycle starts at once; the cycle still observes
   * everything afresh. A check that throws counts as false. There is no polling after a failed
   * cycle: the backoff decides when the next one runs.
   */
  poll?: { everyMs: number; changed: (signal: AbortSignal) => Promise<boolean> };
  /**
   * Other sources of change (an API watch): each runs beside the loop until the signal aborts and
   * calls `trigger` when it sees a change, which brings the next cycle forward like a file change
   * but without the debounce (a watch event is whole, not the first of a burst).
   */
  sources?: readonly ChangeSource[];
}

export type ChangeSource = (trigger: (reason: string) => void, signal: AbortSignal) => Promise<void>;

/** One cycle: throws what the reconcile throws (for `--once`). */
export async function runOnce(reconcile: Reconcile, signal: AbortSignal): Promise<void> {
  await reconcile(signal);
}

export async function runLoop(options: LoopOptions): Promise<void> {
  const { reconcile, log, intervalMs, signal } = options;
  // A rename or a ConfigMap `..data` swap arrives as a burst of events within a few ms.
  const debounceMs = options.debounceMs ?? 25;
  const baseBackoff = options.backoffMs ?? 250;
  let wake: (() => void) | undefined;
  let dirty: boolean;
  let debounce: NodeJS.Timeout | undefined;

  const reconcileNow = (reason: string): void => {
    log.debug('change seen, reconciling', { reason });
    dirty = true;
    wake?.();
  };
  const trigger = (reason: string): void => {
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      reconcileNow(reason);
    }, debounceMs);
  };

  const watchers = await startWatchers(options.watch ?? [], trigger, log);
  // An API watch event is whole (one object, one event): there is no burst to wait out.
  const sources = (options.sources ?? []).map((source) =>
    source(reconcileNow, signal).catch((error: unknown) => log.error('a source of changes failed', { error: errorMessage(error) })),
  );
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort);

  let cycle = 0;
  let failures = 0;
  try {
    while (!signal.aborted) {
      cycle++;
      dirty = false;
      log.debug(`cycle ${cycle} started`);
      const startedAt = performance.now();
      let delay = intervalMs;
      let succeeded = false;
      try {
        const result = await reconcile(signal);
        failures = 0;
        succeeded = true;
        // The moment a change is applied: what a cycle changed is in force when it ends.
        log.debug(`cycle ${cycle} done`, { ms: Math.round(performance.now() - startedAt), changed: result?.changed === true });
        if (result?.requeueAfterMs !== undefined) delay = Math.min(delay, result.requeueAfterMs);
        options.onCycle?.({ ok: true, cycle });
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof TerminalError) {
          log.error(`cycle ${cycle} failed; waiting for a change`, { error: errorMessage(error) });
        } else {
          failures++;
          delay = Math.min(intervalMs, baseBackoff * 2 ** (failures - 1));
          log.error(`cycle ${cycle} failed; retrying in ${(delay / 1000).toFixed(1)}s`, { error: errorMessage(error) });
        }
        options.onCycle?.({ ok: false, error, cycle });
      }
      if (signal.aborted || dirty) continue;
      log.debug(`waiting up to ${(delay / 1000).toFixed(1)}s for the next cycle`);
      // After a failure the backoff decides when to look again: a poll that keeps seeing what the
      // cycle could not fix would otherwise start a cycle every few hundred milliseconds.
      const stopPolling = succeeded ? startPolling(options.poll, signal, log, () => wake?.()) : () => undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
      stopPolling();
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (debounce) clearTimeout(debounce);
    await Promise.all(watchers.map((watcher) => watcher.close()));
    await Promise.all(sources);
  }
}

/** Runs `poll.changed` every `poll.everyMs` until stopped or it reports a change (then calls `onChange` once). */
function startPolling(poll: LoopOptions['poll'], signal: AbortSignal, log: Logger, onChange: () => void): () => void {
  if (!poll) return () => undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    const changed = await poll.changed(signal).catch((error: unknown) => {
      log.debug('poll check failed', { error: errorMessage(error) });
      return false;
    });
    if (stopped) return;
    if (changed) {
      log.debug('poll saw a change, reconciling');
      onChange();
      return;
    }
    timer = setTimeout(() => void tick(), poll.everyMs);
  };
  timer = setTimeout(() => void tick(), poll.everyMs);
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/** Whether a change of `changed` (an absolute path) concerns the target. */
export function isRelevantChange(target: WatchTarget, changed: string): boolean {
  const absolute = path.resolve(target.path);
  if (target.kind === 'dir') return path.dirname(changed) === absolute || changed === absolute;
  return changed === absolute || (path.dirname(changed) === path.dirname(absolute) && path.basename(changed).startsWith('..'));
}

async function startWatchers(
  targets: readonly WatchTarget[],
  trigger: (reason: string) => void,
  log: Logger,
): Promise<FSWatcher[]> {
  const watchers: FSWatcher[] = [];
  for (const target of targets) {
    const absolute = path.resolve(target.path);
    const directory = target.kind === 'dir' ? absolute : path.dirname(absolute);
    const relevant = (changed: string): boolean => isRelevantChange(target, changed);
    const watcher = watch(directory, {
      ignoreInitial: true,
      depth: 0,
      ignored: (changed: string) => changed !== directory && path.dirname(changed) === directory && !relevant(changed),
    });
    watcher.on('all', (event, changed) => {
      if (relevant(changed)) trigger(`${event} ${changed}`);
    });
    watcher.on('error', (error) => log.warn('watch failed', { path: directory, error: errorMessage(error) }));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    watchers.push(watcher);
  }
  return watchers;
}
