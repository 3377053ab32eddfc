import fs from 'node:fs';
import path from 'node:path';

/** What the lab, the bench and the system tests need from the machine, with Debian's package names. */
export const NEEDED_PROGRAMS: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  iptables: 'iptables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  '/usr/sbin/sshd': 'openssh-server',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  ps: 'procps',
  sysctl: 'procps',
  keepalived: 'keepalived',
};

/** What preflightProblems looks at (tests pass their own). */
export interface Machine {
  platform: NodeJS.Platform;
  uid: number | undefined;
  exists: (file: string) => boolean;
  path: string;
}

const THIS_MACHINE: Machine = {
  platform: process.platform,
  uid: process.getuid?.(),
  exists: (file) => fs.existsSync(file),
  path: process.env.PATH ?? '',
};

function found(program: string, machine: Machine): boolean {
  if (program.startsWith('/')) return machine.exists(program);
  const dirs = machine.path.split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  return dirs.some((dir) => dir !== '' && machine.exists(path.join(dir, program)));
}

/** Problems that stop the lab from running here, each a sentence saying how to fix it. */
export function preflightProblems(machine: Machine = THIS_MACHINE): string[] {
  const problems: string[] = [];
  if (machine.platform !== 'linux') problems.push('the lab needs Linux (network namespaces, iptables).');
  if (machine.uid !== 0) problems.push('the lab needs root: it creates network namespaces, iptables rules and sshd processes. Run it as root (e.g. sudo npm run demo).');
  const missing = Object.keys(NEEDED_PROGRAMS).filter((program) => !found(program, machine));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((program) => NEEDED_PROGRAMS[program]))].join(' ');
    problems.push(`missing programs: ${missing.join(', ')}. Install them with: apt-get install -y ${packages}`);
  }
  if (machine.platform === 'linux' && !machine.exists('/proc/sys/net/bridge/bridge-nf-call-iptables')) {
    problems.push('the kernel has no br_netfilter (needed for service DNAT on the lab\'s pod bridge): run modprobe br_netfilter.');
  }
  return problems;
}
