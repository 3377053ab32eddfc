/** A program we ran failed: carries the argv, exit code and the first lines of its stderr. */
export class CommandError extends Error {
  override name = 'CommandError';
  readonly argv: readonly string[];
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  readonly timedOut: boolean;
  /** One line: the reason and the command, without the program's output. */
  readonly shortMessage: string;

  constructor(fields: {
    argv: readonly string[];
    exitCode?: number | undefined;
    signal?: string | undefined;
    stdout?: string;
    stderr?: string;
    durationMs?: number;
    timedOut?: boolean;
    reason?: string;
  }) {
    const command = displayCommand(fields.argv);
    const reason =
      fields.reason ??
      (fields.timedOut
        ? 'Command timed out'
        : fields.signal
          ? `Command was killed with ${fields.signal}`
          : fields.exitCode === 127
            ? 'Command not found (exit code 127)'
            : `Command failed with exit code ${fields.exitCode ?? 'unknown'}`);
    const shortMessage = `${reason}: ${command}`;
    const stderr = (fields.stderr ?? '').trim();
    const excerpt = stderr.split('\n').slice(0, 5).join('\n');
    super(excerpt ? `${shortMessage}\n${excerpt}` : shortMessage);
    this.argv = fields.argv;
    this.command = command;
    this.exitCode = fields.exitCode;
    this.signal = fields.signal;
    this.stdout = fields.stdout ?? '';
    this.stderr = fields.stderr ?? '';
    this.durationMs = fields.durationMs ?? 0;
    this.timedOut = fields.timedOut ?? false;
    this.shortMessage = shortMessage;
  }
}

/** Bad input from a file (or the environment): names the file and the field. Exit code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly file: string;
  readonly field: string | undefined;
  readonly reason: string;

  constructor(file: string, field: string | undefined, reason: string) {
    super(field ? `${file}: ${field}: ${reason}` : `${file}: ${reason}`);
    this.file = file;
    this.field = field;
    this.reason = reason;
  }
}

/** Problems with the input, each already stated in full (naming its file), as one ConfigError. */
export function inputProblems(messages: readonly string[]): ConfigError {
  const text = messages.join('; ');
  return Object.assign(new ConfigError('input', undefined, text), { message: text });
}

/** A program we ran printed something we cannot understand: not bad input from the user (exit code 1). */
export class OutputError extends Error {
  override name = 'OutputError';
}

/** An error that retrying will not fix (the loop waits for a change instead of backing off). */
export class TerminalError extends Error {
  override name = 'TerminalError';
}

/** Quotes an argv for display only: it is never given to a shell. */
export function displayCommand(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)).join(' ');
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** A value quoted for a message (JSON), cut short when long: input text can be megabytes. */
export function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
