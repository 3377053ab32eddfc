import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBin } from '../helpers/cli.js';

/**
 * What the three programs share: durations bounded and named when wrong, usage errors and bad
 * settings exit 2, before anything runs (only node is on PATH).
 */

const NODE_ONLY = path.dirname(process.execPath);

const REQUIRED: Record<'controller' | 'gateway' | 'forwarder', { args: string[]; env: Record<string, string> }> = {
  controller: { args: ['conf'], env: { GATEWAY_NODE_IP: 'gw1', SSH_KEY_PATH: NODE_ONLY } },
  gateway: { args: ['ips.conf'], env: { NIC: 'eth0', NETMASK: '24', DEFAULT_GATEWAY: '192.168.122.1' } },
  forwarder: { args: [], env: { EXTERNAL_SERVICE_NAME: 'es', DATA_FILE: '/nonexistent' } },
};

describe('settings shared by the three programs', () => {
  it.each([
    ['controller', '3000000'],
    ['gateway', '1e-9'],
    ['forwarder', '3000000'],
    ['forwarder', '0.01'],
  ] as const)('%s rejects INTERVAL=%s with exit 2, naming the variable and the bounds', async (program, interval) => {
    const { args, env } = REQUIRED[program];
    const result = await runBin(program, ['--once', ...args], { env: { ...env, INTERVAL: interval, PATH: NODE_ONLY } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`INTERVAL: must be a number of seconds from 0.1 to 86400 (24 h), not "${interval}"`);
  });

  it('rejects a flag given a duration out of range the same way (forwarder --ssh-start-timeout)', async () => {
    const result = await runBin('forwarder', ['--once', '--ssh-start-timeout', '100000'], { env: { ...REQUIRED.forwarder.env, PATH: NODE_ONLY } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('SSH_START_TIMEOUT: must be a number of seconds from 0.1 to 86400 (24 h), not "100000"');
  });

  it.each(['controller', 'gateway', 'forwarder'] as const)('%s exits 2 on an unknown flag', async (program) => {
    const result = await runBin(program, ['--no-such-flag', ...REQUIRED[program].args], { env: { PATH: NODE_ONLY } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("unknown option '--no-such-flag'");
  });
});
