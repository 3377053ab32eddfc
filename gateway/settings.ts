import path from 'node:path';
import { GATEWAY_CIPHERS, parseCipherList } from '../lib/ciphers.js';
import { USER_NAME } from '../lib/hosts.js';
import { isIPv4, unicastIPv4Problem } from '../lib/ipv4.js';
import { INTERVAL, invalid, matching, onOff, oneOf, optional, readSettings, required, withDefault, type Parse, type SettingValues } from '../lib/settings.js';
import { vrrpStateDir, type Placement } from './names.js';
import type { Network } from './plan.js';
import type { VrrpSettings } from './vrrp.js';

/**
 * The gateway's settings: each a flag and an environment variable (both shown in --help), with
 * the original's defaults, checked once here. Later code trusts them.
 */

export interface GatewaySettings {
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
  /** quickack on the routes of each IP's namespace. */
  quickack: boolean;
  intervalMs: number;
  /** Failover on keepalived; undefined: this node alone holds its IPs. */
  vrrp?: VrrpSettings | undefined;
}

/** How keepalived's notify command reaches this program: node and the gateway's entry script. */
export interface Invocation {
  node: string;
  script: string;
}

export const THIS_PROGRAM: Invocation = { node: process.execPath, script: process.argv[1] ?? '' };

/** 24 or 255.255.255.0 -> 24. */
export function parseNetmask(value: string, env = 'NETMASK'): number {
  if (/^\d{1,2}$/.test(value) && Number(value) <= 32) return Number(value);
  if (isIPv4(value)) {
    const bits = value
      .split('.')
      .map((octet) => Number(octet).toString(2).padStart(8, '0'))
      .join('');
    if (/^1*0*$/.test(bits)) return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0');
  }
  throw invalid(env, `"${value}" is neither a prefix length (0-32) nor a netmask like 255.255.255.0`);
}

/** A path that goes into an sshd config: made absolute, and without whitespace. */
const configPath: Parse<string> = (value, env) => {
  const resolved = path.resolve(value);
  if (/\s/.test(resolved)) throw invalid(env, `"${value}" must not contain whitespace`);
  return resolved;
};

const unicastIPv4: Parse<string> = (value, env) => {
  const problem = unicastIPv4Problem(value);
  if (problem !== undefined) throw invalid(env, `"${value}" ${problem}`);
  return value;
};

export const GATEWAY_SETTINGS = {
  netnsPrefix: withDefault({
    flag: '--netns-prefix <prefix>',
    env: 'NETNS_PREFIX',
    default: 'ns',
    help: "name prefix of each IP's network namespace (ns<hex>)",
    parse: matching(/^[\w.-]{0,40}$/, "a prefix of at most 40 letters, digits, '_', '.', '-'"),
  }),
  runDir: withDefault({ flag: '--run-dir <dir>', env: 'RUN_DIR', default: '/run', help: 'directory of the sshd pid files (sshd-<hex>.pid) and generated configs', parse: configPath }),
  nic: required({ flag: '--nic <device>', env: 'NIC', help: 'host network device the macvlan devices hang off', parse: matching(/^[^\s/:]{1,15}$/, 'a network device name') }),
  netmask: required({ flag: '--netmask <bits>', env: 'NETMASK', help: 'prefix length (24) or netmask (255.255.255.0) of the IPs', parse: parseNetmask }),
  defaultGateway: required({ flag: '--default-gateway <ip>', env: 'DEFAULT_GATEWAY', help: 'default route of each IP namespace', parse: unicastIPv4 }),
  rulesFile: withDefault({ flag: '--rules-file <file>', env: 'RULES_FILE', default: '/tmp/rules.yaml', help: 'rules YAML sent by the controller', parse: (value) => path.resolve(value) }),
  sshdPath: withDefault({
    flag: '--sshd-path <file>',
    env: 'SSHD_PATH',
    default: '/usr/sbin/sshd',
    help: 'sshd program (absolute path)',
    // sshd re-executes itself (on start and on SIGHUP) and insists on an absolute path.
    parse: (value, env) => {
      if (!path.isAbsolute(value)) throw invalid(env, `"${value}" must be an absolute path`);
      return value;
    },
  }),
  hostKeyDir: withDefault({
    flag: '--host-key-dir <dir>',
    env: 'HOST_KEY_DIR',
    default: '/etc/ssh',
    help: 'where ssh_host_*_key files are used from (if none, one is generated into the run dir)',
    parse: configPath,
  }),
  sshUser: optional({
    flag: '--ssh-user <user>',
    env: 'SSH_USER',
    help: 'the only user the sshds let in (default: any user with a key; root by key only)',
    parse: matching(USER_NAME, 'a user name'),
  }),
  authorizedKeysFile: optional({
    flag: '--authorized-keys-file <file>',
    env: 'AUTHORIZED_KEYS_FILE',
    help: "AuthorizedKeysFile for the sshds (default: sshd's ~/.ssh/authorized_keys)",
    parse: (value, env) => {
      if (/\s/.test(value) || !(value.startsWith('/') || value.startsWith('%'))) {
        throw invalid(env, `"${value}" must be an absolute path (or start with an sshd token like %h) without whitespace`);
      }
      return value;
    },
  }),
  sshCiphers: withDefault({
    flag: '--ssh-ciphers <list>',
    env: 'SSH_CIPHERS',
    default: GATEWAY_CIPHERS.join(','),
    help: 'the only ciphers the sshds accept, separated by commas',
    parse: parseCipherList,
  }),
  quickack: withDefault({
    flag: '--quickack <on|off>',
    env: 'QUICKACK',
    default: 'on',
    help: "quickack on the routes of each IP's namespace, so that small writes through the tunnels never wait for a delayed ACK",
    parse: onOff,
  }),
  interval: INTERVAL,
  failover: withDefault({
    flag: '--failover <on|off>',
    env: 'FAILOVER',
    default: 'off',
    help: 'run keepalived (VRRP) for each IP, so that a standby gateway node takes the IP over when this one fails',
    parse: onOff,
  }),
  keepalived: withDefault({
    flag: '--keepalived <who>',
    env: 'KEEPALIVED',
    default: 'managed',
    help: 'with failover: who runs keepalived: managed (this program starts, reloads and stops it) or external (systemd)',
    parse: oneOf(['managed', 'external'] as const),
  }),
  vrrpPriority: withDefault({
    flag: '--vrrp-priority <1-254>',
    env: 'VRRP_PRIORITY',
    default: '100',
    help: "with failover: this node's VRRP priority (among the nodes that are up, the highest wins an election)",
    parse: (value, env) => {
      const priority = Number(value);
      if (!/^\d{1,3}$/.test(value) || priority < 1 || priority > 254) throw invalid(env, `must be a whole number from 1 to 254, not "${value}"`);
      return priority;
    },
  }),
  vrrpPreempt: withDefault({
    flag: '--vrrp-preempt <on|off>',
    env: 'VRRP_PREEMPT',
    default: 'off',
    help: 'with failover: a node with a higher priority takes an IP back when it returns (off: keepalived\'s nopreempt)',
    parse: onOff,
  }),
  vrrpAdvertInterval: withDefault({
    flag: '--vrrp-advert-interval <seconds>',
    env: 'VRRP_ADVERT_INTERVAL',
    default: '0.5',
    help: 'with failover: seconds between VRRP adverts; a standby takes over after 3 missed ones and a skew',
    // VRRPv3 counts the interval in centiseconds, in 12 bits.
    parse: (value, env) => {
      const advertIntervalS = Number(value);
      if (!/^\d+(\.\d{1,2})?$/.test(value) || advertIntervalS < 0.05 || advertIntervalS > 40.95) {
        throw invalid(env, `must be seconds from 0.05 to 40.95 in steps of 0.01, not "${value}"`);
      }
      return advertIntervalS;
    },
  }),
};

/** The settings of `teardown`: where the IPs were set up. */
export const PLACEMENT_KEYS = ['netnsPrefix', 'runDir'] as const;
/** The settings of `run` and `status`. */
export const GATEWAY_KEYS = Object.keys(GATEWAY_SETTINGS) as (keyof typeof GATEWAY_SETTINGS)[];

export function resolvePlacement(parsed: Record<string, unknown>): Placement {
  return readSettings(GATEWAY_SETTINGS, PLACEMENT_KEYS, parsed);
}

/** The failover settings, or undefined when failover is off. */
function vrrpSettings(values: SettingValues<typeof GATEWAY_SETTINGS>, invocation: Invocation): VrrpSettings | undefined {
  if (!values.failover) return undefined;
  const notifyCommand = [invocation.node, invocation.script, 'vrrp-notify', vrrpStateDir(values.runDir)];
  // keepalived splits its notify command at whitespace and treats quotes specially.
  const unsafe = notifyCommand.find((word) => !/^[^\s"'\\]+$/.test(word));
  if (unsafe !== undefined) throw invalid('FAILOVER', `keepalived cannot run "${unsafe}" as its notify command: the path must not contain whitespace or quotes`);
  return {
    keepalived: values.keepalived,
    priority: values.vrrpPriority,
    preempt: values.vrrpPreempt,
    advertIntervalS: values.vrrpAdvertInterval,
    notifyCommand,
  };
}

export function resolveGatewaySettings(ipsConf: string, parsed: Record<string, unknown>, invocation: Invocation = THIS_PROGRAM): GatewaySettings {
  const values = readSettings(GATEWAY_SETTINGS, GATEWAY_KEYS, parsed);
  return {
    ipsConf: path.resolve(ipsConf),
    placement: { netnsPrefix: values.netnsPrefix, runDir: values.runDir },
    network: { nic: values.nic, prefixLength: values.netmask, defaultGateway: values.defaultGateway },
    rulesFile: values.rulesFile,
    sshdPath: values.sshdPath,
    hostKeyDir: values.hostKeyDir,
    sshUser: values.sshUser,
    authorizedKeysFile: values.authorizedKeysFile,
    ciphers: values.sshCiphers,
    quickack: values.quickack,
    intervalMs: values.interval,
    vrrp: vrrpSettings(values, invocation),
  };
}
