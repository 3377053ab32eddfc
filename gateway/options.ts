import path from 'node:path';
import { parseSeconds, requiredSetting } from '../lib/cli.js';
import { GATEWAY_CIPHERS, parseCipherList } from '../lib/ciphers.js';
import { ConfigError } from '../lib/errors.js';
import { isIPv4 } from '../lib/ipv4.js';
import type { Placement } from './names.js';
import type { Network } from './plan.js';

/** The gateway's settings after validation: later code trusts them. */
export interface GatewayOptions {
  ipsConf: string;
  placement: Placement;
  network: Network;
  rulesFile: string;
  sshdPath: string;
  hostKeyDir: string;
  sshUser?: string | undefined;
  authorizedKeysFile?: string | undefined;
  /** The ciphers the sshds accept. */
  ciphers: string[];
  intervalMs: number;
}

/** What commander hands over (flags, or their environment variables). */
export interface RawOptions {
  netnsPrefix: string;
  runDir: string;
  nic?: string;
  netmask?: string;
  defaultGateway?: string;
  rulesFile: string;
  sshdPath: string;
  hostKeyDir: string;
  sshUser?: string;
  authorizedKeysFile?: string;
  sshCiphers?: string;
  interval?: string;
}


/** 24 or 255.255.255.0 -> 24. */
export function parseNetmask(value: string): number {
  if (/^\d{1,2}$/.test(value) && Number(value) <= 32) return Number(value);
  if (isIPv4(value)) {
    const bits = value
      .split('.')
      .map((octet) => Number(octet).toString(2).padStart(8, '0'))
      .join('');
    if (/^1*0*$/.test(bits)) return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0');
  }
  throw new ConfigError('environment', 'NETMASK', `"${value}" is neither a prefix length (0-32) nor a netmask like 255.255.255.0`);
}

/** A path that goes into an sshd config: absolute and without whitespace. */
function configPath(value: string, env: string): string {
  const resolved = path.resolve(value);
  if (/\s/.test(resolved)) throw new ConfigError('environment', env, `"${value}" must not contain whitespace`);
  return resolved;
}

/** Absolute, or starting with an sshd token such as %h; no whitespace. */
function authorizedKeysFile(value: string | undefined): string | undefined {
  const file = value?.trim();
  if (!file) return undefined;
  if (/\s/.test(file) || !(file.startsWith('/') || file.startsWith('%'))) {
    throw new ConfigError('environment', 'AUTHORIZED_KEYS_FILE', `"${file}" must be an absolute path (or start with an sshd token like %h) without whitespace`);
  }
  return file;
}

export function placementOptions(raw: Pick<RawOptions, 'netnsPrefix' | 'runDir'>): Placement {
  if (!/^[\w.-]{0,40}$/.test(raw.netnsPrefix)) {
    throw new ConfigError('environment', 'NETNS_PREFIX', `"${raw.netnsPrefix}" may hold only letters, digits, '_', '.', '-' (at most 40)`);
  }
  return { netnsPrefix: raw.netnsPrefix, runDir: configPath(raw.runDir, 'RUN_DIR') };
}

export function gatewayOptions(ipsConf: string, raw: RawOptions): GatewayOptions {
  const nic = requiredSetting(raw.nic, 'NIC', '--nic');
  if (!/^[^\s/:]{1,15}$/.test(nic)) throw new ConfigError('environment', 'NIC', `"${nic}" is not a network device name`);
  const prefixLength = parseNetmask(requiredSetting(raw.netmask, 'NETMASK', '--netmask'));
  const defaultGateway = requiredSetting(raw.defaultGateway, 'DEFAULT_GATEWAY', '--default-gateway');
  if (!isIPv4(defaultGateway)) throw new ConfigError('environment', 'DEFAULT_GATEWAY', `"${defaultGateway}" is not an IPv4 address`);
  if (!path.isAbsolute(raw.sshdPath)) {
    // sshd re-executes itself (on start and on SIGHUP) and insists on an absolute path.
    throw new ConfigError('environment', 'SSHD_PATH', `"${raw.sshdPath}" must be an absolute path`);
  }
  const sshUser = raw.sshUser?.trim() || undefined;
  if (sshUser !== undefined && !/^[a-z_][\w.-]{0,31}$/i.test(sshUser)) {
    throw new ConfigError('environment', 'SSH_USER', `"${sshUser}" is not a user name`);
  }
  const intervalMs = raw.interval === undefined ? 10_000 : parseSeconds(raw.interval, 'INTERVAL') * 1000;
  return {
    ipsConf: path.resolve(ipsConf),
    placement: placementOptions(raw),
    network: { nic, prefixLength, defaultGateway },
    rulesFile: path.resolve(raw.rulesFile),
    sshdPath: raw.sshdPath,
    hostKeyDir: configPath(raw.hostKeyDir, 'HOST_KEY_DIR'),
    sshUser,
    authorizedKeysFile: authorizedKeysFile(raw.authorizedKeysFile),
    ciphers: raw.sshCiphers?.trim() ? parseCipherList(raw.sshCiphers, 'SSH_CIPHERS') : [...GATEWAY_CIPHERS],
    intervalMs,
  };
}
