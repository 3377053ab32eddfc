import { execa } from 'execa';
import { CommandError } from './errors.js';

/**
 * The one module that runs programs. Every call takes an argv array (never a shell string);
 * programs are found by bare name on PATH.
 *
 * `run` is for probes and reads: it always runs. `mutate` is for anything that changes the
 * system: under DEBUG=true it prints the command (and its stdin, if any) instead of running it,
 * as the original's run_command did.
 */

export interface RunOptions {
  /** Text written to the program's stdin. */
  input?: string;
  /** Kill the program after this long (default 60 s; 0: no limit). */
  timeoutMs?: number;
  /** Abort the program (SIGTERM) when this signal aborts. */
  signal?: AbortSignal;
  /** When false, a non-zero exit is returned as a result instead of thrown. Default true. */
  reject?: boolean;
  env?: NodeJS.ProcessEnv;
  /** When false, the program gets only `env` (plus nothing of this process's environment). Default true. */
  extendEnv?: boolean;
  cwd?: string;
  /** Where the program's stdout/stderr go; 'pipe' (default) captures them, 'inherit' shows them as they come. */
  stdout?: 'pipe' | 'ignore' | 'inherit';
  stderr?: 'pipe' | 'ignore' | 'inherit';
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  ok: boolean;
  /** True when DEBUG=true printed the command instead of running it. */
  printed: boolean;
}

export const DEFAULT_TIMEOUT_MS = 60_000;

export function isDebug(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DEBUG === 'true';
}

/** Where DEBUG=true output goes; tests may replace it. */
export const debugOutput: { write(text: string): void } = {
  write: (text) => {
    process.stdout.write(text);
  },
};

export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const argv = [file, ...args];
  const started = performance.now();
  const result = await execa(file, [...args], {
    input: options.input,
    stdin: options.input === undefined ? 'ignore' : 'pipe',
    stdout: options.stdout ?? 'pipe',
    stderr: options.stderr ?? 'pipe',
    timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    cancelSignal: options.signal,
    env: options.env,
    extendEnv: options.extendEnv ?? true,
    cwd: options.cwd,
    reject: false,
    stripFinalNewline: false,
    shell: false,
  });
  const durationMs = Math.round(performance.now() - started);
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  const exitCode = result.exitCode ?? -1;
  const ok = !result.failed;
  if (!ok && options.reject !== false) {
    throw new CommandError({
      argv,
      exitCode: result.exitCode,
      signal: result.signal,
      stdout,
      stderr: result.code === 'ENOENT' ? `${file}: not found on PATH` : stderr,
      durationMs,
      timedOut: result.timedOut,
      reason: result.isCanceled
        ? 'Command was cancelled'
        : result.code === 'ENOENT'
          ? 'Command not found'
          : undefined,
    });
  }
  return { argv, exitCode, stdout, stderr, durationMs, ok, printed: false };
}

/**
 * Runs a command that changes the system, or under DEBUG=true prints it (argv joined by
 * spaces, then its stdin) and reports success without running it.
 */
export async function mutate(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const argv = [file, ...args];
  if (isDebug()) {
    let text = `${argv.join(' ')}\n`;
    if (options.input !== undefined) text += options.input.endsWith('\n') ? options.input : `${options.input}\n`;
    debugOutput.write(text);
    return { argv, exitCode: 0, stdout: '', stderr: '', durationMs: 0, ok: true, printed: true };
  }
  return run(file, args, options);
}

export interface StreamOptions {
  /** Called with each line of stdout, as it comes (without its newline). */
  onLine: (line: string) => void;
  /** Ends the program (SIGTERM) when this signal aborts. */
  signal: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a long-lived program that reports on stdout line by line (a `kubectl get --watch`), until
 * it exits or `signal` aborts. Resolves with its result (stdout is not kept: each line went to
 * onLine; stderr is kept), never throws for a failed exit: the caller decides what an exit means.
 */
export async function streamLines(file: string, args: readonly string[], options: StreamOptions): Promise<RunResult> {
  const argv = [file, ...args];
  const started = performance.now();
  const subprocess = execa(file, [...args], {
    stdin: 'ignore',
    buffer: { stdout: false, stderr: true },
    cancelSignal: options.signal,
    env: options.env,
    extendEnv: true,
    reject: false,
    shell: false,
  });
  try {
    for await (const line of subprocess.iterable({ from: 'stdout' })) options.onLine(line);
  } catch {
    // The iteration ends with the program (also when it is cancelled); the result says how.
  }
  const result = await subprocess;
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  const failure = result.code === 'ENOENT' ? `${file}: not found on PATH` : stderr;
  return { argv, exitCode: result.exitCode ?? -1, stdout: '', stderr: failure, durationMs: Math.round(performance.now() - started), ok: !result.failed, printed: false };
}
