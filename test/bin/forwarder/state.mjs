// Shared state of the forwarder's stand-ins (ps, ssh, kill, iptables-save, iptables-restore):
// "running" ssh processes are files procs/<pid> holding their command line, the nat table is
// nat.save (iptables-save text). Every call is recorded as a JSON line in $STANDIN_LOG.
import fs from 'node:fs';
import path from 'node:path';

export const root = process.env.FORWARDER_STANDIN_DIR;
if (!root) {
  process.stderr.write('forwarder stand-in: FORWARDER_STANDIN_DIR is not set\n');
  process.exit(2);
}
export const procs = path.join(root, 'procs');
fs.mkdirSync(procs, { recursive: true });

export const EMPTY_NAT = '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n';

export function record(program, argv, stdin) {
  if (!process.env.STANDIN_LOG) return;
  fs.appendFileSync(process.env.STANDIN_LOG, `${JSON.stringify(stdin === undefined ? { program, argv } : { program, argv, stdin })}\n`);
}

/**
 * Running processes as [pid, command line], in pid order. A process that is stopped (its file
 * removed) while they are read is left out, as ps leaves out one that exits while it reads /proc.
 */
export function processes() {
  return fs
    .readdirSync(procs)
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => {
      try {
        return [[Number(name), fs.readFileSync(path.join(procs, name), 'utf8').trim()]];
      } catch (error) {
        if (error.code === 'ENOENT') return [];
        throw error;
      }
    })
    .sort((a, b) => a[0] - b[0]);
}

/**
 * Starts a "process": claims the lowest free pid from 1000 by creating used-pids/<pid>
 * exclusively (several ssh stand-ins run at once), then renames a file holding its command line
 * to procs/<pid>, so that a process is never seen without its command line. Pids are not reused.
 */
export function spawnProcess(command) {
  const used = path.join(root, 'used-pids');
  fs.mkdirSync(used, { recursive: true });
  for (let pid = 1000; ; pid++) {
    try {
      fs.closeSync(fs.openSync(path.join(used, String(pid)), 'wx'));
    } catch (error) {
      if (error.code === 'EEXIST') continue;
      throw error;
    }
    const starting = path.join(used, `${pid}.cmdline`);
    fs.writeFileSync(starting, `${command}\n`);
    fs.renameSync(starting, path.join(procs, String(pid)));
    return pid;
  }
}

/** The regex lines of a failure-injection file that match `text`, if the file exists. */
export function failureMatches(name, text) {
  const file = path.join(root, name);
  if (!fs.existsSync(file)) return false;
  const patterns = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  return patterns.length === 0 || patterns.some((pattern) => new RegExp(pattern).test(text));
}

export function readStdin() {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}
