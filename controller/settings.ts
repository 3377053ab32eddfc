import fs from 'node:fs';
import { Option, type Command } from 'commander';
import { missingSetting, parseSeconds } from '../lib/cli.js';
import { ConfigError } from '../lib/errors.js';

/**
 * The controller's settings: every default of the original controller.sh, each overridable by a
 * flag and an environment variable (both shown in --help), validated once here.
 */

export interface ObjectSettings {
  namespace: string;
  configMapName: string;
  configMapKey: string;
  secretName: string;
  secretKey: string;
}

export interface ControllerSettings extends ObjectSettings {
  confDir: string;
  image: string;
  intervalMs: number;
  sshKeyPath: string;
  gatewayHosts: string[];
  gatewayPath: string;
}

interface Setting {
  flag: string;
  env: string;
  default: string;
  description: string;
}

const SETTINGS = {
  namespace: { flag: '--namespace <name>', env: 'FORWARDER_NAMESPACE', default: 'external-services', description: 'namespace of the forwarder pods, services, ConfigMap and secret' },
  configMapName: { flag: '--configmap-name <name>', env: 'CONFIGMAP_NAME', default: 'external-service-data', description: 'ConfigMap that holds the rules' },
  configMapKey: { flag: '--configmap-key <key>', env: 'CONFIGMAP_KEY', default: 'data.yaml', description: 'key of the rules in the ConfigMap' },
  secretName: { flag: '--secret-name <name>', env: 'SECRET_NAME', default: 'my-ssh-key', description: 'secret that holds the ssh key for the forwarders' },
  secretKey: { flag: '--secret-key <key>', env: 'SECRET_KEY', default: 'id_rsa', description: 'key of the ssh key in the secret' },
  image: { flag: '--image <image>', env: 'FWD_IMG', default: 'forwarder:0.1', description: 'forwarder container image' },
  interval: { flag: '--interval <seconds>', env: 'INTERVAL', default: '10', description: 'resync interval (changes in CONF_DIR apply at once)' },
  gatewayPath: { flag: '--gateway-path <path>', env: 'CONFIG_PATH_ON_GATEWAY_NODE', default: '/tmp/rules.yaml', description: 'where the rules file goes on the gateway node(s)' },
} as const satisfies Record<string, Setting>;

const REQUIRED = {
  sshKeyPath: { flag: '--ssh-key <file>', env: 'SSH_KEY_PATH', description: 'ssh private key: stored in the secret and used by scp/ssh to the gateway (required)' },
  gateway: { flag: '--gateway <hosts>', env: 'GATEWAY_NODE_IP', description: 'gateway node(s) receiving the rules, comma or space separated (required)' },
} as const;

function option(setting: Setting): Option {
  return new Option(setting.flag, setting.description).env(setting.env).default(setting.default);
}

/** The options that name the Kubernetes objects (run, teardown and status share them). */
export function addObjectOptions(command: Command): Command {
  for (const key of ['namespace', 'configMapName', 'configMapKey', 'secretName', 'secretKey'] as const) {
    command.addOption(option(SETTINGS[key]));
  }
  return command;
}

/** The options of the reconcile loop. */
export function addRunOptions(command: Command): Command {
  addObjectOptions(command);
  command.addOption(option(SETTINGS.image));
  command.addOption(option(SETTINGS.interval));
  command.addOption(option(SETTINGS.gatewayPath));
  command.addOption(new Option(REQUIRED.sshKeyPath.flag, REQUIRED.sshKeyPath.description).env(REQUIRED.sshKeyPath.env));
  command.addOption(new Option(REQUIRED.gateway.flag, REQUIRED.gateway.description).env(REQUIRED.gateway.env));
  return command;
}

/** The options of `status`: the object names, plus the gateway hosts when known. */
export function addStatusOptions(command: Command): Command {
  addObjectOptions(command);
  command.addOption(
    new Option(REQUIRED.gateway.flag, 'gateway node(s) to report on (default: those recorded on the ConfigMap)').env(REQUIRED.gateway.env),
  );
  return command;
}

export interface RawOptions {
  namespace?: string;
  configmapName?: string;
  configmapKey?: string;
  secretName?: string;
  secretKey?: string;
  image?: string;
  interval?: string;
  gatewayPath?: string;
  sshKey?: string;
  gateway?: string;
}

/** A DNS-1123 label (namespace) or subdomain (ConfigMap, secret). */
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A ConfigMap or secret key. */
const DATA_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
/**
 * The rules' path on the gateway goes into a remote command line (`mv`), so it is limited to
 * characters that no shell interprets.
 */
const SAFE_REMOTE_PATH = /^[A-Za-z0-9_./-]+$/;
/** [user@]host: a name or an IPv4 address; never starting with '-' (it would be an option). */
const GATEWAY_HOST = /^([A-Za-z0-9_][A-Za-z0-9_.-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*$/;

function check(value: string, pattern: RegExp, setting: { env: string }, what: string): string {
  if (!pattern.test(value)) throw new ConfigError('arguments', setting.env, `${JSON.stringify(value)} is not ${what}`);
  return value;
}

export function resolveObjectSettings(raw: RawOptions): ObjectSettings {
  return {
    namespace: check(raw.namespace ?? SETTINGS.namespace.default, DNS1123_LABEL, SETTINGS.namespace, 'a namespace name (DNS-1123 label)'),
    configMapName: check(raw.configmapName ?? SETTINGS.configMapName.default, DNS1123_SUBDOMAIN, SETTINGS.configMapName, 'a ConfigMap name'),
    configMapKey: check(raw.configmapKey ?? SETTINGS.configMapKey.default, DATA_KEY, SETTINGS.configMapKey, 'a ConfigMap key'),
    secretName: check(raw.secretName ?? SETTINGS.secretName.default, DNS1123_SUBDOMAIN, SETTINGS.secretName, 'a secret name'),
    secretKey: check(raw.secretKey ?? SETTINGS.secretKey.default, DATA_KEY, SETTINGS.secretKey, 'a secret key'),
  };
}

/** GATEWAY_NODE_IP: one or more hosts, comma or space separated, duplicates dropped. */
export function parseGatewayHosts(value: string): string[] {
  const hosts = [...new Set(value.split(/[\s,]+/).filter((host) => host !== ''))];
  if (hosts.length === 0) throw missing(REQUIRED.gateway);
  for (const host of hosts) check(host, GATEWAY_HOST, REQUIRED.gateway, 'a host name or IPv4 address ([user@]host)');
  return hosts;
}

function missing(setting: { env: string; flag: string }): ConfigError {
  return missingSetting(setting.env, setting.flag.split(' ')[0] ?? setting.flag);
}

export function resolveControllerSettings(confDir: string, raw: RawOptions): ControllerSettings {
  const sshKeyPath = raw.sshKey?.trim();
  if (!sshKeyPath) throw missing(REQUIRED.sshKeyPath);
  if (raw.gateway === undefined || raw.gateway.trim() === '') throw missing(REQUIRED.gateway);
  try {
    fs.accessSync(sshKeyPath, fs.constants.R_OK);
  } catch {
    throw new ConfigError('environment', REQUIRED.sshKeyPath.env, `cannot read the ssh key ${sshKeyPath}`);
  }
  const image = raw.image ?? SETTINGS.image.default;
  if (image.trim() === '' || /\s/.test(image)) throw new ConfigError('arguments', SETTINGS.image.env, `${JSON.stringify(image)} is not an image name`);
  return {
    ...resolveObjectSettings(raw),
    confDir,
    image,
    intervalMs: parseSeconds(raw.interval ?? SETTINGS.interval.default, SETTINGS.interval.env) * 1000,
    sshKeyPath,
    gatewayHosts: parseGatewayHosts(raw.gateway),
    gatewayPath: check(raw.gatewayPath ?? SETTINGS.gatewayPath.default, SAFE_REMOTE_PATH, SETTINGS.gatewayPath, "a path of letters, digits and '_./-'"),
  };
}
