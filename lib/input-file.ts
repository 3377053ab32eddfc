import fs from 'node:fs';
import { ConfigError } from './errors.js';

/**
 * Reading the files a user or another program hands us (conf files, ips.conf, the rules file,
 * snapshots) so that no such file can stall or swamp a loop: only a regular file (or a symlink to
 * one) is read, never more than a bound, and open() cannot block. O_NONBLOCK makes opening a FIFO
 * return at once (a plain open waits for a writer, forever); fstat on the opened descriptor then
 * tells what it is, so a file swapped between a check and the read cannot slip through.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const READ_CHUNK = 256 * KiB;

/** The largest file of each kind that is read; anything larger is rejected unread. */
export const INPUT_LIMITS = {
  /** An ExternalService is a few hundred bytes; its last valid version is stored in a ConfigMap. */
  confFile: 256 * KiB,
  ipsConf: 1 * MiB,
  /** The rules document (the gateway's rules file, the forwarder's data file). */
  rulesFile: 64 * MiB,
  snapshot: 256 * MiB,
} as const;

/** A file that cannot be used; `code` is the errno code (ENOENT, EACCES, ...) when there is one. */
export class InputFileError extends ConfigError {
  override name = 'InputFileError';
  readonly code: string | undefined;

  constructor(file: string, reason: string, code?: string) {
    super(file, undefined, reason);
    this.code = code;
  }
}

export function formatBytes(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} bytes`;
}

/** What a non-regular file is, in words. */
export function fileKind(stats: fs.Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'of another kind';
}

/** A file over the limit; `size` is undefined when it grew past the limit while being read. */
function tooLarge(file: string, maxBytes: number, size?: number): InputFileError {
  const what = size === undefined ? 'grew larger than' : `is ${size} bytes, more than`;
  return new InputFileError(file, `${what} the limit of ${formatBytes(maxBytes)}`, 'EFBIG');
}

function checkStats(file: string, stats: fs.Stats, maxBytes: number): void {
  if (!stats.isFile()) throw new InputFileError(file, `is ${fileKind(stats)}, not a regular file`, 'EINVAL');
  if (stats.size > maxBytes) throw tooLarge(file, maxBytes, stats.size);
}

function asInputFileError(file: string, error: unknown): InputFileError {
  if (error instanceof InputFileError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  return new InputFileError(file, code === 'ENOENT' ? 'does not exist' : `cannot read: ${code ?? String(error)}`, code);
}

/**
 * The text of a regular file of at most `maxBytes`. Throws InputFileError for a missing or
 * unreadable file (with its errno code), for anything but a regular file, and for a file over
 * the limit (also one that grows past it while it is read).
 */
export function readInputFile(file: string, maxBytes: number): string {
  let fd: number;
  try {
    // Checked before opening too: opening some devices has effects of its own.
    checkStats(file, fs.statSync(file), maxBytes);
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (error) {
    throw asInputFileError(file, error);
  }
  try {
    const stats = fs.fstatSync(fd);
    checkStats(file, stats, maxBytes);
    // Read to the end, not to the size fstat saw: the file may grow meanwhile.
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, maxBytes + 1 - length, Math.max(stats.size - length + 1, 4096)));
      const read = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      length += read;
      if (length > maxBytes) throw tooLarge(file, maxBytes);
    }
    return Buffer.concat(chunks, length).toString('utf8');
  } catch (error) {
    throw asInputFileError(file, error);
  } finally {
    fs.closeSync(fd);
  }
}
