import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ForwarderSettings } from '../../../forwarder/settings.js';

const runForwarder = vi.fn(async (_settings: ForwarderSettings, _once: boolean) => undefined);
const showForwarderStatus = vi.fn(async (_settings: ForwarderSettings) => 0 as const);
vi.mock('../../../forwarder/run.js', () => ({ runForwarder }));
vi.mock('../../../forwarder/status.js', () => ({ showForwarderStatus }));

const { buildForwarderProgram } = await import('../../../forwarder/command.js');
const { resolveForwarderSettings } = await import('../../../forwarder/settings.js');

const base = { externalServiceName: 'es', dataFile: '/d/data.yaml' };

const INTEL_CPUINFO = 'processor\t: 0\nflags\t\t: fpu vme pclmulqdq aes avx vaes\n';
const NO_AES_CPUINFO = 'processor\t: 0\nflags\t\t: fpu vme sse2 vaes\n';

describe('resolveForwarderSettings', () => {
  it('puts the original StrictHostKeyChecking=no first, then the options that keep a tunnel healthy and fast', () => {
    expect(resolveForwarderSettings(base, INTEL_CPUINFO).ssh).toEqual({
      key: '/etc/ssh-key/id_rsa',
      options: [
        'StrictHostKeyChecking=no',
        'BatchMode=yes',
        'ExitOnForwardFailure=yes',
        'ServerAliveInterval=1',
        'ServerAliveCountMax=3',
        'ConnectTimeout=10',
        'Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com',
      ],
      startTimeoutMs: 30_000,
    });
  });

  it('tunes the pod routes unless QUICKACK is off', () => {
    expect(resolveForwarderSettings(base).quickack).toBe(true);
    expect(resolveForwarderSettings({ ...base, quickack: 'off' }).quickack).toBe(false);
  });

  it('offers chacha20-poly1305 first on a CPU without AES instructions', () => {
    expect(resolveForwarderSettings(base, NO_AES_CPUINFO).ssh.options.at(-1)).toBe('Ciphers=chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com');
    expect(resolveForwarderSettings(base, '').ssh.options.at(-1)).toBe('Ciphers=chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com');
  });

  it('offers exactly the SSH_CIPHERS list, in its order, whatever the CPU', () => {
    expect(resolveForwarderSettings({ ...base, sshCiphers: 'aes256-gcm@openssh.com, aes128-ctr' }, INTEL_CPUINFO).ssh.options.at(-1)).toBe('Ciphers=aes256-gcm@openssh.com,aes128-ctr');
  });

  it("puts the operator's SSH_OPTIONS before the built-in ones so that they win", () => {
    const settings = resolveForwarderSettings({ ...base, sshOptions: ' ServerAliveInterval=5  ConnectTimeout=3 ', knownHosts: '/k/known_hosts', strictHostKeyChecking: 'accept-new' });
    expect(settings.ssh.options.slice(0, 4)).toEqual(['ServerAliveInterval=5', 'ConnectTimeout=3', 'StrictHostKeyChecking=accept-new', 'UserKnownHostsFile=/k/known_hosts']);
  });

  it.each([
    [{ externalServiceName: undefined }, /EXTERNAL_SERVICE_NAME is required to be passed as an environment variable \(or --external-service-name\)/],
    [{ dataFile: ' ' }, /DATA_FILE is required/],
    [{ sshOptions: 'ProxyJump' }, /SSH_OPTIONS: "ProxyJump" is not an ssh Key=Value option/],
    [{ strictHostKeyChecking: 'maybe' }, /SSH_STRICT_HOST_KEY_CHECKING: must be yes, accept-new, no, off/],
    [{ sshUser: 'a b' }, /SSH_USER/],
    [{ sshUser: '-Jevil' }, /SSH_USER: "-Jevil" is not a user name/],
    [{ interval: '0' }, /INTERVAL: must be a number of seconds from 0.1 to 86400/],
    [{ sshStartTimeout: '3000000' }, /SSH_START_TIMEOUT: must be a number of seconds from 0.1 to 86400/],
    [{ sshCiphers: 'aes128-gcm,chacha20' }, /SSH_CIPHERS: "aes128-gcm" is not an OpenSSH cipher/],
    [{ quickack: 'maybe' }, /QUICKACK: must be on or off/],
  ])('rejects %j with an error naming the setting', (override, message) => {
    expect(() => resolveForwarderSettings({ ...base, ...override })).toThrow(message);
  });
});

describe('buildForwarderProgram', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    runForwarder.mockClear();
    showForwarderStatus.mockClear();
  });

  const parse = async (argv: string[], env: Record<string, string>): Promise<void> => {
    for (const name of ['EXTERNAL_SERVICE_NAME', 'DATA_FILE', 'SSH_USER']) vi.stubEnv(name, env[name] ?? '');
    await buildForwarderProgram().exitOverride().parseAsync(['node', 'forwarder', ...argv]);
  };

  it('runs by default, reading the required settings from the environment and --once from the command line', async () => {
    await parse(['--once', '--ssh-key', '/k'], { EXTERNAL_SERVICE_NAME: 'es', DATA_FILE: '/d' });
    expect(runForwarder).toHaveBeenCalledWith(expect.objectContaining({ name: 'es', dataFile: '/d', ssh: expect.objectContaining({ key: '/k' }) }), true, expect.anything());
  });

  it('has the same run subcommand as the other programs', async () => {
    await parse(['run'], { EXTERNAL_SERVICE_NAME: 'es', DATA_FILE: '/d' });
    expect(runForwarder).toHaveBeenCalledWith(expect.objectContaining({ name: 'es' }), false, expect.anything());
  });

  it('runs status with the same settings, flags given after the subcommand included', async () => {
    await parse(['status', '--ssh-user', 'fwd'], { EXTERNAL_SERVICE_NAME: 'es', DATA_FILE: '/d' });
    expect(runForwarder).not.toHaveBeenCalled();
    expect(showForwarderStatus).toHaveBeenCalledWith(expect.objectContaining({ name: 'es', sshUser: 'fwd' }), process.stdout);
  });
});
