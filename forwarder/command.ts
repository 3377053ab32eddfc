import fs from 'node:fs';
import { Command, Option } from 'commander';
import { cpuHasAes, parseCipherList, preferredCiphers } from '../lib/ciphers.js';
import { onOff, parseSeconds, requiredSetting } from '../lib/cli.js';
import { ConfigError } from '../lib/errors.js';
import { defaultSshOptions, type SshSettings } from './tunnel.js';

/** commander -> typed, checked settings. No work happens here. */

export interface ForwarderSettings {
  name: string;
  dataFile: string;
  ssh: SshSettings;
  /** Added as `USER@` to every tunnel host that names no user itself. */
  sshUser: string | undefined;
  intervalMs: number;
  /** Give the pod's routes quickack (never in the host's network namespace). */
  quickack: boolean;
}

export const DEFAULTS = {
  sshKey: '/etc/ssh-key/id_rsa',
  strictHostKeyChecking: 'no',
  interval: '10',
  sshStartTimeout: '30',
  quickack: 'on',
} as const;

interface RawOptions {
  externalServiceName?: string;
  dataFile?: string;
  sshKey: string;
  sshUser?: string;
  strictHostKeyChecking: string;
  knownHosts?: string;
  sshOptions?: string;
  sshCiphers?: string;
  interval: string;
  sshStartTimeout: string;
  quickack: string;
}

export interface ProgramActions {
  run(settings: ForwarderSettings, once: boolean): Promise<void>;
  status(settings: ForwarderSettings): Promise<void>;
}

export function buildProgram(actions: ProgramActions): Command {
  const program = new Command('forwarder')
    .description(
      'Keeps the ssh tunnels and the nat table of this pod equal to forwarder.<EXTERNAL_SERVICE_NAME> of the data file; ' +
        'reconciles every --interval seconds and as soon as the data file changes.',
    )
    .addOption(new Option('--once', 'run one reconcile cycle and exit'))
    .addOption(new Option('--external-service-name <name>', 'this forwarder\'s entry in the data file (required)').env('EXTERNAL_SERVICE_NAME'))
    .addOption(new Option('--data-file <file>', 'the rules file (the ConfigMap\'s data.yaml; required)').env('DATA_FILE'))
    .addOption(new Option('--ssh-key <file>', 'private key for the tunnels').env('SSH_KEY').default(DEFAULTS.sshKey))
    .addOption(new Option('--ssh-user <user>', 'user to connect as (USER@HOST); default: ssh\'s own choice').env('SSH_USER'))
    .addOption(
      new Option('--strict-host-key-checking <mode>', 'ssh StrictHostKeyChecking (yes, accept-new, no)')
        .env('SSH_STRICT_HOST_KEY_CHECKING')
        .default(DEFAULTS.strictHostKeyChecking),
    )
    .addOption(new Option('--known-hosts <file>', 'ssh UserKnownHostsFile; default: ssh\'s own').env('SSH_KNOWN_HOSTS'))
    .addOption(
      new Option('--ssh-options <options>', `extra ssh -o options, space-separated Key=Value; they win over the built-in ${defaultSshOptions().join(' ')}`).env(
        'SSH_OPTIONS',
      ),
    )
    .addOption(
      new Option('--ssh-ciphers <list>', 'ciphers to offer, in order, separated by commas (default: AES-GCM first when the CPU has AES instructions, else chacha20-poly1305 first)').env(
        'SSH_CIPHERS',
      ),
    )
    .addOption(new Option('--interval <seconds>', 'resync interval').env('INTERVAL').default(DEFAULTS.interval))
    .addOption(
      new Option('--ssh-start-timeout <seconds>', 'how long one tunnel may take to start').env('SSH_START_TIMEOUT').default(DEFAULTS.sshStartTimeout),
    )
    .addOption(
      new Option('--quickack <on|off>', "quickack on the pod's routes, so that small writes through the tunnels never wait for a delayed ACK (never in the host's network namespace)")
        .env('QUICKACK')
        .default(DEFAULTS.quickack),
    )
    .showHelpAfterError()
    .action(async (options: RawOptions & { once?: boolean }) => {
      await actions.run(settingsFrom(options), options.once === true);
    });

  program
    .command('status')
    .description('show the running tunnels and nat rules next to the desired ones (exit 1 when they differ)')
    .action(async (_options: unknown, command: Command) => {
      await actions.status(settingsFrom(command.optsWithGlobals<RawOptions>()));
    });
  return program;
}


function sshOptionList(text: string | undefined): string[] {
  const options = (text ?? '').split(/\s+/).filter((word) => word !== '');
  for (const option of options) {
    if (!/^[A-Za-z]+=\S+$/.test(option)) throw new ConfigError('environment', 'SSH_OPTIONS', `"${option}" is not an ssh Key=Value option`);
  }
  return options;
}

/** /proc/cpuinfo, or '' where it cannot be read (then chacha20-poly1305 goes first). */
function readCpuInfo(): string {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

export function settingsFrom(options: RawOptions, cpuinfo: string = readCpuInfo()): ForwarderSettings {
  const name = requiredSetting(options.externalServiceName, 'EXTERNAL_SERVICE_NAME', '--external-service-name');
  const dataFile = requiredSetting(options.dataFile, 'DATA_FILE', '--data-file');
  const sshUser = options.sshUser?.trim() || undefined;
  if (sshUser !== undefined && !/^[\w.-]+$/.test(sshUser)) throw new ConfigError('environment', 'SSH_USER', `"${sshUser}" is not a user name`);
  const knownHosts = options.knownHosts?.trim() || undefined;
  if (!/^(yes|no|accept-new|off)$/.test(options.strictHostKeyChecking)) {
    throw new ConfigError('environment', 'SSH_STRICT_HOST_KEY_CHECKING', `must be yes, accept-new, no or off, not "${options.strictHostKeyChecking}"`);
  }
  const ciphers = options.sshCiphers?.trim() ? parseCipherList(options.sshCiphers, 'SSH_CIPHERS') : preferredCiphers(cpuHasAes(cpuinfo));
  return {
    name,
    dataFile,
    ssh: {
      key: options.sshKey,
      options: [
        ...sshOptionList(options.sshOptions),
        `StrictHostKeyChecking=${options.strictHostKeyChecking}`,
        ...(knownHosts ? [`UserKnownHostsFile=${knownHosts}`] : []),
        ...defaultSshOptions(),
        `Ciphers=${ciphers.join(',')}`,
      ],
      startTimeoutMs: parseSeconds(options.sshStartTimeout, 'SSH_START_TIMEOUT') * 1000,
    },
    sshUser,
    intervalMs: parseSeconds(options.interval, 'INTERVAL') * 1000,
    quickack: onOff(options.quickack, 'QUICKACK'),
  };
}
