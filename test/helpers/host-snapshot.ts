import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../lib/exec.js';

/**
 * What a lab run could leave on the machine, seen from the host (the root network and mount
 * namespaces): network namespaces, processes, entries of /run and /tmp, mounts, links and
 * addresses, and the iptables rules of the host. Two snapshots, one before the run and one after
 * it, are compared with leftoversBetween, which keeps only what is new and could be the lab's (its
 * names, folders, programs and addresses), so that what others do on the machine meanwhile does
 * not count.
 */

export interface HostSnapshot {
  netns: string[];
  /** pid and start time (so that a reused pid is a new process) -> command line and network namespace. */
  processes: Map<string, { cmdline: string; netns: string }>;
  run: string[];
  tmp: string[];
  /** One line per mount: mount point, root, file system type and source. */
  mounts: string[];
  links: string[];
  addresses: string[];
  iptables: string[];
}

function entries(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function processes(): Map<string, { cmdline: string; netns: string }> {
  const found = new Map<string, { cmdline: string; netns: string }>();
  for (const pid of entries('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = fs.readFileSync(path.join('/proc', pid, 'cmdline'), 'utf8').split('\0').filter(Boolean).join(' ');
      // The start time is the 22nd field of stat; the command name (2nd) may hold spaces.
      const stat = fs.readFileSync(path.join('/proc', pid, 'stat'), 'utf8');
      const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
      const netns = fs.readlinkSync(path.join('/proc', pid, 'ns', 'net'));
      if (cmdline !== '') found.set(`${pid}@${startTime}`, { cmdline, netns });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

function mounts(): string[] {
  // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      const separator = fields.indexOf('-');
      return `${fields[4]} root=${fields[3]} ${fields[separator + 1]} ${fields[separator + 2]}`;
    })
    .sort();
}

async function lines(argv: readonly string[]): Promise<string[]> {
  const [file, ...args] = argv;
  const result = await run(file as string, args, { reject: false, timeoutMs: 30_000 });
  return result.stdout.split('\n').filter(Boolean);
}

/** The network namespaces named with `prefix` in /run/netns now, as a process's /proc/PID/ns/net shows them (`net:[INODE]`). */
export function namedNetnsIds(prefix: string): string[] {
  return entries('/run/netns')
    .filter((name) => name.startsWith(prefix))
    .flatMap((name) => {
      try {
        return [`net:[${fs.statSync(path.join('/run/netns', name)).ino}]`];
      } catch {
        return [];
      }
    });
}

export async function hostSnapshot(): Promise<HostSnapshot> {
  const links = (await lines(['ip', '-o', 'link', 'show'])).map((line) => line.split(':')[1]?.trim().split('@')[0] ?? line);
  // `ip -o addr`: INDEX: DEV FAMILY ADDRESS ... (lifetimes change: keep device, family and address).
  const addresses = (await lines(['ip', '-o', 'addr', 'show'])).map((line) => line.split(/\s+/).slice(1, 4).join(' '));
  const iptables = [...(await lines(['iptables-save'])), ...(await lines(['ip6tables-save']))]
    .filter((line) => !line.startsWith('#'))
    .map((line) => line.replace(/\[\d+:\d+\]/g, '[counters]'));
  return {
    netns: entries('/run/netns'),
    processes: processes(),
    run: entries('/run'),
    tmp: entries('/tmp'),
    mounts: mounts(),
    links: links.sort(),
    addresses: addresses.sort(),
    iptables,
  };
}

/** What the lab may have made: its name prefixes, its folders, its programs, its addresses. */
export interface LabTraces {
  /** Prefixes of the lab's network namespaces and temporary folders (e.g. `k8xcc`, `k8xcp`). */
  prefixes: readonly string[];
  /** Paths that a process of the lab names on its command line (its programs, the binaries' cache). */
  paths: readonly string[];
  /** The lab's network namespaces seen during the run (namedNetnsIds): a process in one of them is the lab's, whatever it names. */
  netnsIds: ReadonlySet<string>;
  /** Addresses and networks the lab uses, as they appear in text (e.g. `192.168.122.`). */
  addresses: readonly string[];
}

/** What is new after the run and could be the lab's, by the snapshot's parts (processes as text). */
export type Leftovers = Record<keyof HostSnapshot, string[]>;

/** Each item of `after` that `before` does not hold as often (a multiset difference). */
function added(before: readonly string[], after: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const item of before) counts.set(item, (counts.get(item) ?? 0) + 1);
  return after.filter((item) => {
    const count = counts.get(item) ?? 0;
    counts.set(item, count - 1);
    return count <= 0;
  });
}

/** The mount points a container of the lab mounts over in its own mount namespace: never in the host's. */
const CONTAINER_MOUNT_POINTS = ['/etc', '/root', '/run', '/root/.ssh', '/root/.kube', '/tmp'];

/** What is in `after` and not in `before` and could be the lab's; everything empty means nothing was left behind. */
export function leftoversBetween(before: HostSnapshot, after: HostSnapshot, traces: LabTraces): Leftovers {
  const named = (name: string): boolean => traces.prefixes.some((prefix) => name.startsWith(prefix));
  const namesLab = (text: string): boolean => traces.paths.some((dir) => text.includes(dir)) || traces.prefixes.some((prefix) => text.includes(prefix));
  const mentions = (text: string): boolean => namesLab(text) || traces.addresses.some((address) => text.includes(address));
  // Others' programs may name the lab's addresses too (stand-ins in tests), and run in network
  // namespaces of their own: a process counts when it names the lab's folders or programs, or
  // lives in one of the lab's network namespaces.
  const newProcesses = [...after.processes]
    .filter(([key]) => !before.processes.has(key))
    .filter(([, process]) => namesLab(process.cmdline) || traces.netnsIds.has(process.netns));
  return {
    netns: added(before.netns, after.netns).filter(named),
    processes: newProcesses.map(([key, process]) => `${key.split('@')[0]}: ${process.cmdline} (${process.netns})`),
    run: added(before.run, after.run).filter(named),
    tmp: added(before.tmp, after.tmp).filter(named),
    mounts: added(before.mounts, after.mounts).filter((mount) => mentions(mount) || CONTAINER_MOUNT_POINTS.includes(mount.split(' ')[0] ?? '')),
    links: added(before.links, after.links).filter((link) => named(link) || /^(lan-|vp|veth|cni0$|br0$)/.test(link)),
    addresses: added(before.addresses, after.addresses).filter(mentions),
    iptables: added(before.iptables, after.iptables).filter((line) => mentions(line) || line.includes('KUBE-')),
  };
}
