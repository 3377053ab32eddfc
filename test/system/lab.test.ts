import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sshProcessesIn } from '../../lab/checks.js';
import { Lab, systemSkipReason } from '../helpers/netns.js';

const skip = systemSkipReason(['ssh', 'ssh-keygen', '/usr/sbin/sshd']);
if (skip) console.warn(`system tests skipped: ${skip}`);

describe.skipIf(skip !== undefined)('system test lab primitives', () => {
  const lab = new Lab('k8xlab');
  let a = '';
  let b = '';

  beforeAll(async () => {
    a = await lab.netns('a');
    b = await lab.netns('b');
    await lab.veth(a, 'eth0', b, 'eth0');
    await lab.addr(a, 'eth0', '10.209.0.1/24');
    await lab.addr(b, 'eth0', '10.209.0.2/24');
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  it('a peer server reports the address a client in another namespace connects from', async () => {
    const server = await lab.peerServer(b, '10.209.0.2', 8000);
    await expect(lab.connect(a, '10.209.0.2', 8000)).resolves.toBe('10.209.0.1');
    expect(server.seen()).toEqual(['10.209.0.1']);
  });

  it('an ssh -L tunnel through a lab sshd reaches the far server from the sshd address', async () => {
    const key = await lab.sshKeypair();
    await lab.startSshd(b, { listenAddress: '10.209.0.2', authorizedKeys: [key.publicKey] });
    await lab.exec(b, ['ip', 'addr', 'add', '10.209.0.3/24', 'dev', 'eth0']);
    await lab.peerServer(b, '10.209.0.3', 9000);
    const tunnel = lab.spawn(a, [
      'ssh', '-N', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
      '-o', 'ExitOnForwardFailure=yes', '-i', key.privateKey, '-L', '127.0.0.1:7000:10.209.0.3:9000', '10.209.0.2',
    ]);
    await expect
      .poll(async () => lab.connect(a, '127.0.0.1', 7000).catch(() => ''), { timeout: 10_000, interval: 200 })
      .toBe('10.209.0.2');
    await lab.stop(tunnel);
  });

  it("lists only the ssh processes of one network namespace, not another's with the same command line", async () => {
    // A program named ssh (a link to sh) that waits, with an IP as its last argument, as a tunnel has.
    const ssh = path.join(lab.tempDir, 'ssh');
    fs.symlinkSync('/bin/sh', ssh);
    const argv = [ssh, '-c', 'sleep 60; :', 'tunnel', '192.168.122.200'];
    const inside = lab.spawn(a, argv, { stdio: 'ignore' });
    const outside = lab.spawn(b, argv, { stdio: 'ignore' });
    try {
      // Both were spawned at once; either may still be starting, so wait on each.
      await expect.poll(() => sshProcessesIn(a), { timeout: 5000 }).toEqual([argv]);
      await expect.poll(() => sshProcessesIn(b), { timeout: 5000 }).toEqual([argv]);
      await lab.stop(outside);
      await expect.poll(() => sshProcessesIn(b), { timeout: 5000 }).toEqual([]);
      expect(sshProcessesIn(a)).toEqual([argv]);
      expect(sshProcessesIn('k8xlab-no-such-netns')).toEqual([]);
    } finally {
      await lab.stop(inside);
      await lab.stop(outside);
    }
  });

  it('cleanup leaves no namespace behind', async () => {
    const extra = new Lab('k8xlabz');
    await extra.netns('x');
    expect(Lab.leftovers('k8xlabz')).toEqual(['k8xlabzx']);
    await extra.cleanup();
    expect(Lab.leftovers('k8xlabz')).toEqual([]);
  });
});
