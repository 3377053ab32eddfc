import { describe, expect, it, vi } from 'vitest';
import { buildProgram, settingsFrom, type ForwarderSettings } from '../../../forwarder/command.js';

const base = { externalServiceName: 'es', dataFile: '/d/data.yaml', sshKey: '/etc/ssh-key/id_rsa', strictHostKeyChecking: 'no', interval: '10', sshStartTimeout: '30', quickack: 'on' };

const INTEL_CPUINFO = 'processor\t: 0\nflags\t\t: fpu vme pclmulqdq aes avx vaes\n';
const NO_AES_CPUINFO = 'processor\t: 0\nflags\t\t: fpu vme sse2 vaes\n';

describe('settingsFrom', () => {
  it('puts the original StrictHostKeyChecking=no first, then the options that keep a tunnel healthy and fast', () => {
    expect(settingsFrom(base, INTEL_CPUINFO).ssh).toEqual({
      key: '/etc/ssh-key/id_rsa',
      options: [
        'StrictHostKeyChecking=no',
        'BatchMode=yes',
        'ExitOnForwardFailure=yes',
        'ServerAliveInterval=15',
        'ServerAliveCountMax=3',
        'ConnectTimeout=10',
        'Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com',
      ],
      startTimeoutMs: 30_000,
    });
  });

  it('tunes the pod routes unless QUICKACK is off', () => {
    expect(settingsFrom(base).quickack).toBe(true);
    expect(settingsFrom({ ...base, quickack: 'off' }).quickack).toBe(false);
  });

  it('offers chacha20-poly1305 first on a CPU without AES instructions', () => {
    expect(settingsFrom(base, NO_AES_CPUINFO).ssh.options.at(-1)).toBe('Ciphers=chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com');
    expect(settingsFrom(base, '').ssh.options.at(-1)).toBe('Ciphers=chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com');
  });

  it('offers exactly the SSH_CIPHERS list, in its order, whatever the CPU', () => {
    expect(settingsFrom({ ...base, sshCiphers: 'aes256-gcm@openssh.com, aes128-ctr' }, INTEL_CPUINFO).ssh.options.at(-1)).toBe('Ciphers=aes256-gcm@openssh.com,aes128-ctr');
  });

  it('puts the operator\'s SSH_OPTIONS before the built-in ones so that they win', () => {
    const settings = settingsFrom({ ...base, sshOptions: ' ServerAliveInterval=5  ConnectTimeout=3 ', knownHosts: '/k/known_hosts', strictHostKeyChecking: 'accept-new' });
    expect(settings.ssh.options.slice(0, 4)).toEqual(['ServerAliveInterval=5', 'ConnectTimeout=3', 'StrictHostKeyChecking=accept-new', 'UserKnownHostsFile=/k/known_hosts']);
  });

  it.each([
    [{ externalServiceName: undefined }, /EXTERNAL_SERVICE_NAME is required to be passed as an environment variable/],
    [{ dataFile: ' ' }, /DATA_FILE is required/],
    [{ sshOptions: 'ProxyJump' }, /SSH_OPTIONS: "ProxyJump" is not an ssh Key=Value option/],
    [{ strictHostKeyChecking: 'maybe' }, /SSH_STRICT_HOST_KEY_CHECKING: must be/],
    [{ sshUser: 'a b' }, /SSH_USER/],
    [{ interval: '0' }, /INTERVAL: must be a positive number of seconds/],
    [{ sshCiphers: 'aes128-gcm,chacha20' }, /SSH_CIPHERS: "aes128-gcm" is not an OpenSSH cipher/],
    [{ quickack: 'maybe' }, /QUICKACK: must be on or off/],
  ])('rejects %j with an error naming the setting', (override, message) => {
    expect(() => settingsFrom({ ...base, ...override })).toThrow(message);
  });
});

describe('buildProgram', () => {
  const parse = async (argv: string[], env: Record<string, string>): Promise<{ run: ReturnType<typeof vi.fn>; status: ReturnType<typeof vi.fn> }> => {
    const run = vi.fn(async (_settings: ForwarderSettings, _once: boolean) => undefined);
    const status = vi.fn(async (_settings: ForwarderSettings) => undefined);
    vi.stubEnv('EXTERNAL_SERVICE_NAME', env.EXTERNAL_SERVICE_NAME ?? '');
    vi.stubEnv('DATA_FILE', env.DATA_FILE ?? '');
    vi.stubEnv('SSH_USER', env.SSH_USER ?? '');
    try {
      await buildProgram({ run, status }).exitOverride().parseAsync(['node', 'forwarder', ...argv]);
    } finally {
      vi.unstubAllEnvs();
    }
    return { run, status };
  };

  it('reads the required settings from the environment and --once from the command line', async () => {
    const { run } = await parse(['--once', '--ssh-key', '/k'], { EXTERNAL_SERVICE_NAME: 'es', DATA_FILE: '/d' });
    expect(run).toHaveBeenCalledWith(expect.objectContaining({ name: 'es', dataFile: '/d', ssh: expect.objectContaining({ key: '/k' }) }), true);
  });

  it('runs status with the same settings, flags given after the subcommand included', async () => {
    const { run, status } = await parse(['status', '--ssh-user', 'fwd'], { EXTERNAL_SERVICE_NAME: 'es', DATA_FILE: '/d' });
    expect(run).not.toHaveBeenCalled();
    expect(status).toHaveBeenCalledWith(expect.objectContaining({ name: 'es', sshUser: 'fwd' }));
  });
});
