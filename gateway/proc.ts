import fs from 'node:fs';

/** Readers of /proc: pure parsers of its text, tested against captured lines, and isRunning. */

/** Linux's USER_HZ: /proc reports process start times in 1/100 s on every architecture. */
export const TICKS_PER_SECOND = 100;

export interface ProcStat {
  /** The state letter (R, S, Z, ...). */
  state: string;
  ppid: number;
  /** Start time in clock ticks since boot. */
  startTicks: number;
}

/** /proc/<pid>/stat. The command name (field 2) may hold spaces and ") ": fields are counted from its last ")". */
export function parseProcStat(stat: string): ProcStat | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(fields[1]);
  const startTicks = Number(fields[19]);
  if (!fields[0] || !Number.isFinite(ppid) || !Number.isFinite(startTicks)) return undefined;
  return { state: fields[0], ppid, startTicks };
}

/** The boot time (ms since the epoch) from /proc/stat. */
export function bootTimeMs(procStat: string): number | undefined {
  const seconds = Number(/^btime (\d+)$/m.exec(procStat)?.[1]);
  return Number.isFinite(seconds) ? seconds * 1000 : undefined;
}

export function ticksToMs(bootMs: number, ticks: number): number {
  return bootMs + (ticks * 1000) / TICKS_PER_SECOND;
}

/** True while `pid` runs: it exists and is not a zombie waiting to be reaped (read from /proc, no program run). */
export function isRunning(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = parseProcStat(stat)?.state;
  return state !== undefined && state !== 'Z';
}
