import { describe, expect, it } from 'vitest';
import { preflightProblems, type Machine } from '../../../lab/preflight.js';

const everything: Machine = { platform: 'linux', uid: 0, exists: () => true, path: '/usr/bin' };

describe('preflightProblems', () => {
  it('finds nothing wrong on a Linux machine, as root, with every program', () => {
    expect(preflightProblems(everything)).toEqual([]);
  });

  it('asks for root', () => {
    expect(preflightProblems({ ...everything, uid: 1000 })).toEqual([expect.stringContaining('the lab needs root')]);
  });

  it('names the missing programs and the apt packages that bring them', () => {
    const problems = preflightProblems({ ...everything, exists: (file) => !/sshd$|iptables-restore$|nsenter$/.test(file) });
    expect(problems).toEqual([
      'missing programs: iptables-restore, /usr/sbin/sshd, nsenter. Install them with: apt-get install -y iptables openssh-server util-linux',
    ]);
  });

  it('asks for br_netfilter when the kernel lacks it', () => {
    const problems = preflightProblems({ ...everything, exists: (file) => !file.includes('bridge-nf-call-iptables') });
    expect(problems).toEqual([expect.stringContaining('modprobe br_netfilter')]);
  });
});
