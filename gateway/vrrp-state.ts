import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../lib/errors.js';
import { ipToHex, isIPv4 } from '../lib/ipv4.js';
import { parseProcStat, ticksToMs } from './proc.js';
import { VRRP_STATES, type Announcement, type VrrpState } from './vrrp.js';

/**
 * The roles keepalived announces, kept where the gateway (and `gateway status`) can read them
 * back at any time. keepalived starts its notify command in a new process for each transition,
 * so two quick transitions (BACKUP, then MASTER 0.2 s later when the address was deleted under
 * it) may write in either order. Each transition therefore gets its own file, named by when
 * keepalived started its command (its process start time, in clock ticks since boot) and its pid:
 * the newest name is the current announcement, whatever order the writes finished in. A writer
 * removes the older files of its IP.
 *
 *   <state dir>/<hex of the IP>-<start time, 16 digits>-<pid>   containing "MASTER 100\n"
 */

const ENTRY = /^([0-9a-f]{8})-(\d{16})-(\d+)$/;

interface Entry {
  name: string;
  hex: string;
  ticks: number;
  pid: number;
}

function parseEntry(name: string): Entry | undefined {
  const match = ENTRY.exec(name);
  return match ? { name, hex: match[1] as string, ticks: Number(match[2]), pid: Number(match[3]) } : undefined;
}

const newestFirst = (a: Entry, b: Entry): number => b.ticks - a.ticks || b.pid - a.pid;

function entries(dir: string): Entry[] {
  try {
    return fs
      .readdirSync(dir)
      .map(parseEntry)
      .filter((entry): entry is Entry => entry !== undefined);
  } catch {
    return [];
  }
}

export function parseAnnouncement(text: string): { state: VrrpState; priority: number } | undefined {
  const [state, priority] = text.trim().split(/\s+/);
  if (!VRRP_STATES.includes(state as VrrpState) || !/^\d{1,3}$/.test(priority ?? '')) return undefined;
  return { state: state as VrrpState, priority: Number(priority) };
}

/** The newest announcement per IP (by hex), from the state dir. */
export function readAnnouncements(dir: string, bootMs: number): Record<string, Announcement> {
  const newest = new Map<string, Entry>();
  for (const entry of entries(dir).sort(newestFirst)) if (!newest.has(entry.hex)) newest.set(entry.hex, entry);
  const result: Record<string, Announcement> = {};
  for (const [hex, entry] of newest) {
    let text: string;
    let writtenAtMs: number;
    try {
      text = fs.readFileSync(path.join(dir, entry.name), 'utf8');
      writtenAtMs = fs.statSync(path.join(dir, entry.name)).mtimeMs;
    } catch {
      continue;
    }
    const parsed = parseAnnouncement(text);
    if (parsed) result[hex] = { ...parsed, atMs: ticksToMs(bootMs, entry.ticks), writtenAtMs };
  }
  return result;
}

/** Every state file of one IP (for teardown). */
export function announcementFiles(dir: string, hex: string): string[] {
  return entries(dir)
    .filter((entry) => entry.hex === hex)
    .map((entry) => path.join(dir, entry.name));
}

/**
 * `gateway vrrp-notify STATE_DIR INSTANCE IP STATE PRIORITY`: what keepalived runs on each
 * transition (it appends the last four words). Records the transition, then removes the older
 * records of the IP.
 */
export function recordAnnouncement(dir: string, words: readonly string[], self = { pid: process.pid, stat: fs.readFileSync('/proc/self/stat', 'utf8') }): string {
  const [type, ip, state, priority] = words;
  if (type !== 'INSTANCE' || !isIPv4(ip) || parseAnnouncement(`${state} ${priority}`) === undefined) {
    throw new ConfigError('vrrp-notify', undefined, `expected INSTANCE <IP> <MASTER|BACKUP|FAULT|STOP|DELETED> <priority> from keepalived, not "${words.join(' ')}"`);
  }
  const ticks = parseProcStat(self.stat)?.startTicks;
  if (ticks === undefined) throw new Error('cannot read this process\'s start time from /proc/self/stat');
  const hex = ipToHex(ip);
  const name = `${hex}-${String(ticks).padStart(16, '0')}-${self.pid}`;
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const temporary = path.join(dir, `.${name}.tmp`);
  fs.writeFileSync(temporary, `${state} ${priority}\n`);
  fs.renameSync(temporary, path.join(dir, name));
  const [, ...older] = entries(dir)
    .filter((entry) => entry.hex === hex)
    .sort(newestFirst);
  for (const entry of older) fs.rmSync(path.join(dir, entry.name), { force: true });
  return name;
}
