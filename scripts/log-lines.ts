import fs from 'node:fs';

/** A line of a component's log (lib/log's format: an ISO timestamp, then the rest) and its time. */
export interface LogLine {
  atMs: number;
  text: string;
}

/** The timestamped lines of a component's log, at or after `fromMs`; none while the file does not exist. */
export function logLines(file: string, fromMs = Number.NEGATIVE_INFINITY): LogLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((text) => ({ atMs: Date.parse(text.slice(0, text.indexOf(' '))), text }))
    .filter((line) => Number.isFinite(line.atMs) && line.atMs >= fromMs);
}
