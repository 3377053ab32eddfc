import fs from 'node:fs';
import path from 'node:path';
import { DATA_KEY, DNS1123_LABEL, DNS1123_SUBDOMAIN } from '../lib/kube-names.js';
import { cpuHasAes, parseCipherList, preferredCiphers } from '../lib/ciphers.js';
import { USER_NAME } from '../lib/hosts.js';
import { invalid, INTERVAL, matching, onOff, oneOf, optional, readSettings, required, seconds, text, withDefault, type Parse } from '../lib/settings.js';
import type { ConfigMapTarget } from './rules-source.js';
import { defaultSshOptions, type SshSettings } from './tunnel.js';

/**
 * The forwarder's settings: each a flag and an environment variable (both shown in --help),
 * checked once here.
 */

export interface ForwarderSettings {
  name: string;
  dataFile: string;
  ssh: SshSettings;
  /** Added as `USER@` to every tunnel host that names no user itself. */
  sshUser: string | undefined;
  intervalMs: number;
  /** Give the pod's routes quickack (never in the host's network namespace). */
  quickack: boolean;
  /** The ConfigMap to watch through the API, when RULES_CONFIGMAP is set. */
  rulesConfigMap: ConfigMapTarget | undefined;
}

const sshOptionList: Parse<string[]> = (value, env) => {
  const options = value.split(/\s+/).filter((word) => word !== '');
  for (const option of options) {
    if (!/^[A-Za-z]+=\S+$/.test(option)) throw invalid(env, `"${option}" is not an ssh Key=Value option`);
  }
  return options;
};

export const FORWARDER_SETTINGS = {
  name: required({ flag: '--external-service-name <name>', env: 'EXTERNAL_SERVICE_NAME', help: "this forwarder's entry in the data file", parse: text }),
  dataFile: required({ flag: '--data-file <file>', env: 'DATA_FILE', help: "the rules file (the ConfigMap's data.yaml)", parse: text }),
  sshKey: withDefault({ flag: '--ssh-key <file>', env: 'SSH_KEY', default: '/etc/ssh-key/id_rsa', help: 'private key for the tunnels', parse: text }),
  sshUser: optional({ flag: '--ssh-user <user>', env: 'SSH_USER', help: "user to connect as (USER@HOST); default: ssh's own choice", parse: matching(USER_NAME, 'a user name') }),
  strictHostKeyChecking: withDefault({
    flag: '--strict-host-key-checking <mode>',
    env: 'SSH_STRICT_HOST_KEY_CHECKING',
    default: 'no',
    help: 'ssh StrictHostKeyChecking (yes, accept-new, no)',
    parse: oneOf(['yes', 'accept-new', 'no', 'off']),
  }),
  knownHosts: optional({ flag: '--known-hosts <file>', env: 'SSH_KNOWN_HOSTS', help: "ssh UserKnownHostsFile; default: ssh's own", parse: text }),
  sshOptions: optional({
    flag: '--ssh-options <options>',
    env: 'SSH_OPTIONS',
    help: `extra ssh -o options, space-separated Key=Value; they win over the built-in ${defaultSshOptions().join(' ')}`,
    parse: sshOptionList,
  }),
  sshCiphers: optional({
    flag: '--ssh-ciphers <list>',
    env: 'SSH_CIPHERS',
    help: 'ciphers to offer, in order, separated by commas (default: AES-GCM first when the CPU has AES instructions, else chacha20-poly1305 first)',
    parse: parseCipherList,
  }),
  rulesConfigMap: optional({
    flag: '--rules-configmap <name>',
    env: 'RULES_CONFIGMAP',
    help: "the ConfigMap that holds this forwarder's rules, watched through the API (the pod's in-cluster configuration) so that a change applies at once; the data file is used while the API cannot be reached. Default: none (the data file only)",
    parse: matching(DNS1123_SUBDOMAIN, 'a ConfigMap name'),
  }),
  rulesConfigMapKey: optional({
    flag: '--rules-configmap-key <key>',
    env: 'RULES_CONFIGMAP_KEY',
    help: "the rules' key in that ConfigMap (default: the data file's name)",
    parse: matching(DATA_KEY, 'a ConfigMap key'),
  }),
  podNamespace: optional({
    flag: '--pod-namespace <name>',
    env: 'POD_NAMESPACE',
    help: "that ConfigMap's namespace (default: the pod's own, from the in-cluster configuration)",
    parse: matching(DNS1123_LABEL, 'a namespace name (DNS-1123 label)'),
  }),
  interval: INTERVAL,
  sshStartTimeout: withDefault({ flag: '--ssh-start-timeout <seconds>', env: 'SSH_START_TIMEOUT', default: '30', help: 'how long one tunnel may take to start', parse: seconds }),
  quickack: withDefault({
    flag: '--quickack <on|off>',
    env: 'QUICKACK',
    default: 'on',
    help: "quickack on the pod's routes, so that small writes through the tunnels never wait for a delayed ACK (never in the host's network namespace)",
    parse: onOff,
  }),
};

export const FORWARDER_KEYS = Object.keys(FORWARDER_SETTINGS) as (keyof typeof FORWARDER_SETTINGS)[];

/** /proc/cpuinfo, or '' where it cannot be read (then chacha20-poly1305 goes first). */
function readCpuInfo(): string {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

export function resolveForwarderSettings(parsed: Record<string, unknown>, cpuinfo: string = readCpuInfo()): ForwarderSettings {
  const values = readSettings(FORWARDER_SETTINGS, FORWARDER_KEYS, parsed);
  const ciphers = values.sshCiphers ?? preferredCiphers(cpuHasAes(cpuinfo));
  return {
    name: values.name,
    dataFile: values.dataFile,
    ssh: {
      key: values.sshKey,
      // ssh takes the first value given for an option: the operator's SSH_OPTIONS win.
      options: [
        ...(values.sshOptions ?? []),
        `StrictHostKeyChecking=${values.strictHostKeyChecking}`,
        ...(values.knownHosts ? [`UserKnownHostsFile=${values.knownHosts}`] : []),
        ...defaultSshOptions(),
        `Ciphers=${ciphers.join(',')}`,
      ],
      startTimeoutMs: values.sshStartTimeout,
    },
    sshUser: values.sshUser,
    intervalMs: values.interval,
    quickack: values.quickack,
    rulesConfigMap:
      values.rulesConfigMap === undefined
        ? undefined
        : { name: values.rulesConfigMap, key: values.rulesConfigMapKey ?? path.basename(values.dataFile), namespace: values.podNamespace },
  };
}
