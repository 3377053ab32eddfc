import fs from 'node:fs';
import path from 'node:path';
import { Lab, PACKAGE_ROOT, waitFor } from '../lab/netns.js';
import { BIN } from '../lab/connector.js';
import { originalTunnelArgv } from '../lab/original.js';
import { cpuHasAes, GATEWAY_CIPHERS, preferredCiphers } from '../lib/ciphers.js';
import { serializeRules } from '../lib/rules.js';
import { median } from './stats.js';

/**
 * Throughput of one bulk transfer (default 200 MB) between two namespaces, three ways in the same
 * run: direct (no tunnel), through the original's tunnel command (`ssh -o
 * StrictHostKeyChecking=no -i KEY -g -f -N -L SPEC HOST`, OpenSSH's defaults, to an sshd with
 * OpenSSH's defaults), and through the -L tunnel that bin/forwarder starts to an sshd that accepts
 * the ciphers the gateway's sshds accept. Each is run `repeats` times, the two tunnels
 * alternately so that both meet the same machine load; the median counts. The forwarder runs in a
 * namespace of its own (as in a pod), so that what it tunes there leaves the original's untouched.
 */

export interface TunnelMeasurement {
  bytes: number;
  directMBps: number;
  originalMBps: number;
  forwarderMBps: number;
  /** forwarder / original; 1.0 means equal. */
  forwarderVsOriginal: number;
  /** The cipher the forwarder offers first on this machine. */
  forwarderCipher: string;
}

/** The original's tunnel client, and the direct transfers. */
const CLIENT = '10.208.0.1';
/** The byte server, and an sshd with OpenSSH's defaults (the original's gateway). */
const SERVER = '10.208.0.2';
/** bin/forwarder's pod. */
const POD = '10.209.0.1';
/** An sshd with the gateway's cipher set (this product's gateway). */
const GATEWAY = '10.209.0.3';


export async function benchTunnel(bytes = 200 * 1000 * 1000, repeats = 5): Promise<TunnelMeasurement> {
  const lab = new Lab('k8xbt');
  try {
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    const pod = await lab.netns('pod');
    await lab.veth(a, 'eth0', b, 'eth0');
    await lab.veth(pod, 'eth0', b, 'eth1');
    await lab.addr(a, 'eth0', `${CLIENT}/24`);
    await lab.addr(b, 'eth0', `${SERVER}/24`);
    await lab.addr(pod, 'eth0', `${POD}/24`);
    await lab.addr(b, 'eth1', `${GATEWAY}/24`);
    const source = lab.spawn(b, [process.execPath, path.join(PACKAGE_ROOT, 'lab', 'byte-server.mjs'), SERVER, '9000', String(bytes)]);
    await waitFor(() => (source.output().includes('listening') ? true : undefined), 5000, 'byte server', source);
    const key = await lab.sshKeypair();
    await lab.startSshd(b, { listenAddress: SERVER, authorizedKeys: [key.publicKey] });
    await lab.startSshd(b, { listenAddress: GATEWAY, authorizedKeys: [key.publicKey], extraConfig: [`Ciphers ${GATEWAY_CIPHERS.join(',')}`] });

    const transfer = async (host: string, port: number, from = a): Promise<number> => {
      const result = await lab.exec(from, [process.execPath, path.join(PACKAGE_ROOT, 'lab', 'byte-client.mjs'), host, String(port)], { timeoutMs: 120_000 });
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
    await lab.exec(a, originalTunnelArgv(key.privateKey, 'ssh-tunnel', `7000:${SERVER}:9000,${SERVER}`));
    await waitFor(async () => ((await lab.canConnect(a, '127.0.0.1', 7000)) ? true : undefined), 10_000, "the original's -L tunnel");
    const dataFile = path.join(lab.tempDir, 'data.yaml');
    fs.writeFileSync(
      dataFile,
      serializeRules({ forwarder: { bench: { 'iptables-rule': '', 'remote-ssh-tunnel': '', 'ssh-tunnel': `7001:${SERVER}:9000,${GATEWAY}\n` } }, gateway: {} }),
    );
    const forwarder = lab.spawn(pod, [BIN('forwarder')], {
      pidns: true,
      env: { NO_COLOR: '1', EXTERNAL_SERVICE_NAME: 'bench', DATA_FILE: dataFile, SSH_KEY: key.privateKey, SSH_KNOWN_HOSTS: '/dev/null' },
    });
    await waitFor(async () => ((await lab.canConnect(pod, '127.0.0.1', 7001)) ? true : undefined), 15_000, "the forwarder's -L tunnel", forwarder);
    const originalRates: number[] = [];
    const forwarderRates: number[] = [];
    for (let index = 0; index < repeats; index++) {
      originalRates.push(await transfer('127.0.0.1', 7000));
      forwarderRates.push(await transfer('127.0.0.1', 7001, pod));
    }
    const originalMBps = median(originalRates);
    const forwarderMBps = median(forwarderRates);
    await lab.stop(forwarder);

    const forwarderCipher = preferredCiphers(cpuHasAes(fs.readFileSync('/proc/cpuinfo', 'utf8')))[0] as string;
    return { bytes, directMBps, originalMBps, forwarderMBps, forwarderVsOriginal: forwarderMBps / originalMBps, forwarderCipher };
  } finally {
    await lab.cleanup();
  }
}
