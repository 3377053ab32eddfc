import fs from 'node:fs';
import { DATA_KEY, DNS1123_LABEL, DNS1123_SUBDOMAIN } from '../lib/kube-names.js';
import { INTERVAL, invalid, matching, missingSetting, optional, readSettings, required, text, withDefault, type Parse } from '../lib/settings.js';

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

/**
 * The rules' path on the gateway goes into a remote command line (`mv`), so it is limited to
 * characters that no shell interprets.
 */
const SAFE_REMOTE_PATH = /^[A-Za-z0-9_./-]+$/;
/** [user@]host: a name or an IPv4 address; never starting with '-' (it would be an option). */
const GATEWAY_HOST = /^([A-Za-z0-9_][A-Za-z0-9_.-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*$/;

/** GATEWAY_NODE_IP: one or more hosts, comma or space separated, duplicates dropped. */
export const parseGatewayHosts: Parse<string[]> = (value, env) => {
  const hosts = [...new Set(value.split(/[\s,]+/).filter((host) => host !== ''))];
  if (hosts.length === 0) throw missingSetting(env, '--gateway');
  const host = matching(GATEWAY_HOST, 'a host name or IPv4 address ([user@]host)');
  return hosts.map((entry) => host(entry, env));
};

/** A readable ssh key file. */
const readableFile: Parse<string> = (value, env) => {
  try {
    fs.accessSync(value, fs.constants.R_OK);
  } catch {
    throw invalid(env, `cannot read the ssh key ${value}`);
  }
  return value;
};

/** Room for `-<ExternalService name>` (at most 63 characters) within the 253 of a ConfigMap name. */
export const CONFIGMAP_NAME_MAX = 253 - 64;

const configMapName: Parse<string> = (value, env) => {
  const name = matching(DNS1123_SUBDOMAIN, 'a ConfigMap name')(value, env);
  if (name.length > CONFIGMAP_NAME_MAX) throw invalid(env, `is ${name.length} characters; at most ${CONFIGMAP_NAME_MAX} leave room for the forwarder ConfigMaps' names (NAME-<ExternalService name>)`);
  return name;
};

const GATEWAY_FLAG = '--gateway <hosts>';

export const CONTROLLER_SETTINGS = {
  namespace: withDefault({
    flag: '--namespace <name>',
    env: 'FORWARDER_NAMESPACE',
    default: 'external-services',
    help: 'namespace of the forwarder pods, services, ConfigMap and secret',
    parse: matching(DNS1123_LABEL, 'a namespace name (DNS-1123 label)'),
  }),
  configMapName: withDefault({
    flag: '--configmap-name <name>',
    env: 'CONFIGMAP_NAME',
    default: 'external-service-data',
    help: "ConfigMap of the controller's state; each forwarder's rules go into NAME-<ExternalService name>",
    parse: configMapName,
  }),
  configMapKey: withDefault({ flag: '--configmap-key <key>', env: 'CONFIGMAP_KEY', default: 'data.yaml', help: 'key of the rules in the ConfigMap', parse: matching(DATA_KEY, 'a ConfigMap key') }),
  secretName: withDefault({ flag: '--secret-name <name>', env: 'SECRET_NAME', default: 'my-ssh-key', help: 'secret that holds the ssh key for the forwarders', parse: matching(DNS1123_SUBDOMAIN, 'a secret name') }),
  secretKey: withDefault({ flag: '--secret-key <key>', env: 'SECRET_KEY', default: 'id_rsa', help: 'key of the ssh key in the secret', parse: matching(DATA_KEY, 'a secret key') }),
  image: withDefault({ flag: '--image <image>', env: 'FWD_IMG', default: 'forwarder:0.1', help: 'forwarder container image', parse: matching(/^\S+$/, 'an image name') }),
  interval: INTERVAL,
  gatewayPath: withDefault({
    flag: '--gateway-path <path>',
    env: 'CONFIG_PATH_ON_GATEWAY_NODE',
    default: '/tmp/rules.yaml',
    help: 'where the rules file goes on the gateway node(s)',
    parse: matching(SAFE_REMOTE_PATH, "a path of letters, digits and '_./-'"),
  }),
  sshKeyPath: required({ flag: '--ssh-key <file>', env: 'SSH_KEY_PATH', help: 'ssh private key: stored in the secret and used by scp/ssh to the gateway', parse: readableFile }),
  gateway: required({ flag: GATEWAY_FLAG, env: 'GATEWAY_NODE_IP', help: 'gateway node(s) receiving the rules, comma or space separated', parse: parseGatewayHosts }),
  /** `status` reports on the gateway hosts when given, else on those recorded on the ConfigMap. */
  gatewayToReport: optional({ flag: GATEWAY_FLAG, env: 'GATEWAY_NODE_IP', help: 'gateway node(s) to report on (default: those recorded on the ConfigMap)', parse: parseGatewayHosts }),
  snapshot: optional({ flag: '--snapshot <file>', env: 'GENRULE_SNAPSHOT', help: 'use a saved cluster snapshot (see `snapshot`) instead of reading the cluster', parse: text }),
};

/** The settings that name the Kubernetes objects (run, teardown and status share them). */
export const OBJECT_KEYS = ['namespace', 'configMapName', 'configMapKey', 'secretName', 'secretKey'] as const;
export const RUN_KEYS = [...OBJECT_KEYS, 'image', 'interval', 'gatewayPath', 'sshKeyPath', 'gateway'] as const;
export const STATUS_KEYS = [...OBJECT_KEYS, 'image', 'gatewayToReport'] as const;

export function resolveObjectSettings(parsed: Record<string, unknown>): ObjectSettings {
  return readSettings(CONTROLLER_SETTINGS, OBJECT_KEYS, parsed);
}

export function resolveControllerSettings(confDir: string, parsed: Record<string, unknown>): ControllerSettings {
  const values = readSettings(CONTROLLER_SETTINGS, RUN_KEYS, parsed);
  const { interval, gateway, ...rest } = values;
  return { ...rest, confDir, intervalMs: interval, gatewayHosts: gateway };
}
