import fs from 'node:fs';
import path from 'node:path';
import { Lab, PACKAGE_ROOT, waitFor } from '../lab/netns.js';
import { BIN } from '../lab/connector.js';
import { serializeRules } from '../lib/rules.js';
import { median } from './stats.js';

/**
 * Throughput of one bulk transfer (default 200 MB) between two namespaces, three ways in the same
 * run: direct, through a plain `ssh -N -L`, and through the -L tunnel that bin/forwarder starts
 * (same ssh, with the forwarder's options). Each is run `repeats` times; the median counts.
 */

export interface TunnelMeasurement {
  bytes: number;
  directMBps: number;
  plainSshMBps: number;
  forwarderMBps: number;
  /** forwarder / plain ssh; 1.0 means equal. */
  forwarderVsPlain: number;
}

const SERVER = '10.208.0.2';
const CLIENT = '10.208.0.1';


export async function benchTunnel(bytes = 200 * 1000 * 1000, repeats = 5): Promise<TunnelMeasurement> {
  const lab = new Lab('k8xbt');
  try {
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    await lab.veth(a, 'eth0', b, 'eth0');
    await lab.addr(a, 'eth0', `${CLIENT}/24`);
    await lab.addr(b, 'eth0', `${SERVER}/24`);
    const source = lab.spawn(b, [process.execPath, path.join(PACKAGE_ROOT, 'lab', 'byte-server.mjs'), SERVER, '9000', String(bytes)]);
    await waitFor(() => (source.output().includes('listening') ? true : undefined), 5000, 'byte server', source);
    const key = await lab.sshKeypair();
    await lab.startSshd(b, { listenAddress: SERVER, authorizedKeys: [key.publicKey] });

    const transfer = async (host: string, port: number): Promise<number> => {
      const result = await lab.exec(a, [process.execPath, path.join(PACKAGE_ROOT, 'lab', 'byte-client.mjs'), host, String(port)], { timeoutMs: 120_000 });
      const [received, ms] = result.stdout.trim().split(' ').map(Number) as [number, number];
      if (received !== bytes) throw new Error(`received ${received} of ${bytes} bytes from ${host}:${port}`);
      return bytes / 1e6 / (ms / 1000);
    };
    const measure = async (host: string, port: number): Promise<number> => {
      const rates: number[] = [];
      for (let index = 0; index < repeats; index++) rates.push(await transfer(host, port));
      return median(rates);
    };

    const directMBps = await measure(SERVER, 9000);

    // Both tunnels up at once, measured alternately, so that both meet the same machine load.
    const plain = lab.spawn(a, [
      'ssh', '-N', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
      '-i', key.privateKey, '-L', `7000:${SERVER}:9000`, SERVER,
    ]);
    await waitFor(async () => ((await lab.canConnect(a, '127.0.0.1', 7000)) ? true : undefined), 10_000, 'plain ssh -L', plain);
    const dataFile = path.join(lab.tempDir, 'data.yaml');
    fs.writeFileSync(
      dataFile,
      serializeRules({ forwarder: { bench: { 'iptables-rule': '', 'remote-ssh-tunnel': '', 'ssh-tunnel': `7001:${SERVER}:9000,${SERVER}\n` } }, gateway: {} }),
    );
    const forwarder = lab.spawn(a, [BIN('forwarder')], {
      pidns: true,
      env: { NO_COLOR: '1', EXTERNAL_SERVICE_NAME: 'bench', DATA_FILE: dataFile, SSH_KEY: key.privateKey, SSH_KNOWN_HOSTS: '/dev/null' },
    });
    await waitFor(async () => ((await lab.canConnect(a, '127.0.0.1', 7001)) ? true : undefined), 15_000, 'the forwarder\'s -L tunnel', forwarder);
    const plainRates: number[] = [];
    const forwarderRates: number[] = [];
    for (let index = 0; index < repeats; index++) {
      plainRates.push(await transfer('127.0.0.1', 7000));
      forwarderRates.push(await transfer('127.0.0.1', 7001));
    }
    const plainSshMBps = median(plainRates);
    const forwarderMBps = median(forwarderRates);
    await lab.stop(forwarder);
    await lab.stop(plain);

    return { bytes, directMBps, plainSshMBps, forwarderMBps, forwarderVsPlain: forwarderMBps / plainSshMBps };
  } finally {
    await lab.cleanup();
  }
}
