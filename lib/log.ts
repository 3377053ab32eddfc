import { Chalk, type ChalkInstance } from 'chalk';

/**
 * Logs go to stderr (stdout carries data only): one line per event with a timestamp, the level,
 * the component and the message, then key=value fields. Colour only on a terminal, never under
 * NO_COLOR. LOG_LEVEL=debug shows debug lines.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, string | number | boolean | undefined | null>;

export interface LogSink {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface Logger {
  readonly component: string;
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  child(component: string): Logger;
}

export interface LoggerOptions {
  sink?: LogSink;
  color?: boolean;
  level?: Level;
  now?: () => Date;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function colorWanted(sink: LogSink, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return sink.isTTY === true && env.TERM !== 'dumb';
}

function levelFromEnv(env: NodeJS.ProcessEnv): Level {
  const value = env.LOG_LEVEL?.toLowerCase();
  return value === 'debug' || value === 'warn' || value === 'error' ? value : 'info';
}

function formatValue(value: string | number | boolean): string {
  const text = String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

export function formatFields(fields: Fields | undefined): string {
  if (!fields) return '';
  return Object.entries(fields)
    .filter((entry): entry is [string, string | number | boolean] => entry[1] !== undefined && entry[1] !== null)
    .map(([key, value]) => `${key}=${formatValue(value)}`)
    .join(' ');
}

export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const sink = options.sink ?? process.stderr;
  const chalk: ChalkInstance = new Chalk({ level: (options.color ?? colorWanted(sink)) ? 1 : 0 });
  const threshold = ORDER[options.level ?? levelFromEnv(process.env)];
  const now = options.now ?? (() => new Date());
  const paint: Record<Level, (text: string) => string> = {
    debug: chalk.gray,
    info: chalk.cyan,
    warn: chalk.yellow,
    error: chalk.red,
  };

  const emit = (level: Level, message: string, fields?: Fields): void => {
    if (ORDER[level] < threshold) return;
    const extra = formatFields(fields);
    const line = [
      chalk.dim(now().toISOString()),
      paint[level](level.toUpperCase().padEnd(5)),
      chalk.bold(component),
      level === 'error' ? chalk.red(message) : message,
      extra ? chalk.dim(extra) : '',
    ]
      .filter((part) => part !== '')
      .join(' ');
    sink.write(`${line}\n`);
  };

  return {
    component,
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (sub) => createLogger(`${component}/${sub}`, { ...options, sink }),
  };
}
