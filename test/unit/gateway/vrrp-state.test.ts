import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseProcStat } from '../../../gateway/proc.js';
import { announcementFiles, readAnnouncements, recordAnnouncement } from '../../../gateway/vrrp-state.js';

/** A /proc/<pid>/stat line of a process started `ticks` clock ticks after boot (its name holds a space and a parenthesis). */
const stat = (ticks: number, ppid = 1): string =>
  `4242 (node vrrp) x) S ${ppid} 4242 4242 0 -1 4194560 1200 0 0 0 10 5 0 0 20 0 11 0 ${ticks} 1181491200 12000 18446744073709551615 1 1 0 0 0 0 0 4096 134234626 0 0 0 17 1 0 0 0 0 0`;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
function stateDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-ext-vrrp-'));
  dirs.push(dir);
  return path.join(dir, 'vrrp-state');
}

const BOOT_MS = 1_700_000_000_000;

describe('parseProcStat', () => {
  it('reads the state, the parent and the start time after a command name with spaces and parentheses', () => {
    expect(parseProcStat(stat(123456, 77))).toEqual({ state: 'S', ppid: 77, startTicks: 123456 });
  });

  it('rejects text that is not a stat line', () => {
    expect(parseProcStat('')).toBeUndefined();
  });
});

describe('VRRP announcements', () => {
  it('records what keepalived announced, named by when keepalived started the command', () => {
    const dir = stateDir();
    const name = recordAnnouncement(dir, ['INSTANCE', '192.168.122.200', 'MASTER', '150'], { pid: 4242, stat: stat(500) });
    expect(name).toBe('c0a87ac8-0000000000000500-4242');
    expect(fs.readFileSync(path.join(dir, name), 'utf8')).toBe('MASTER 150\n');
    expect(readAnnouncements(dir, BOOT_MS)).toEqual({ c0a87ac8: { state: 'MASTER', priority: 150, atMs: BOOT_MS + 5000, writtenAtMs: fs.statSync(path.join(dir, name)).mtimeMs } });
  });

  it('keeps the later transition when the earlier one is written last, and removes the older records of the IP', () => {
    const dir = stateDir();
    recordAnnouncement(dir, ['INSTANCE', '192.168.122.200', 'MASTER', '150'], { pid: 4300, stat: stat(720) });
    // BACKUP came first (0.2 s earlier) but its command finished last.
    recordAnnouncement(dir, ['INSTANCE', '192.168.122.200', 'BACKUP', '150'], { pid: 4299, stat: stat(700) });
    recordAnnouncement(dir, ['INSTANCE', '192.168.122.201', 'FAULT', '150'], { pid: 4301, stat: stat(650) });

    expect(readAnnouncements(dir, BOOT_MS)).toMatchObject({
      c0a87ac8: { state: 'MASTER', priority: 150, atMs: BOOT_MS + 7200 },
      c0a87ac9: { state: 'FAULT', priority: 150, atMs: BOOT_MS + 6500 },
    });
    expect(fs.readdirSync(dir).sort()).toEqual(['c0a87ac8-0000000000000720-4300', 'c0a87ac9-0000000000000650-4301']);
    expect(announcementFiles(dir, 'c0a87ac9')).toEqual([path.join(dir, 'c0a87ac9-0000000000000650-4301')]);
  });

  it.each([
    [['GROUP', '192.168.122.200', 'MASTER', '150']],
    [['INSTANCE', 'not-an-ip', 'MASTER', '150']],
    [['INSTANCE', '192.168.122.200', 'PROMOTED', '150']],
    [['INSTANCE', '192.168.122.200', 'MASTER']],
  ])('refuses %o, which keepalived does not send, and writes nothing', (words) => {
    const dir = stateDir();
    expect(() => recordAnnouncement(dir, words, { pid: 1, stat: stat(1) })).toThrow(/expected INSTANCE <IP> <MASTER\|BACKUP\|FAULT\|STOP\|DELETED> <priority> from keepalived/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('reads nothing from a state dir that does not exist, and ignores files it did not write', () => {
    const dir = stateDir();
    expect(readAnnouncements(dir, BOOT_MS)).toEqual({});
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'MASTER 100\n');
    fs.writeFileSync(path.join(dir, 'c0a87ac8-0000000000000001-1'), 'garbage\n');
    expect(readAnnouncements(dir, BOOT_MS)).toEqual({});
  });
});
