import { errorMessage } from '../lib/errors.js';
import { INPUT_LIMITS, readInputFile } from '../lib/input-file.js';
import type { NatRule } from '../lib/iptables.js';
import { blockLines, natRules, parseRules, parseTunnelLine } from '../lib/rules.js';
import { chooseRules, describeTarget, fileFingerprint, type ApiRules, type ConfigMapTarget } from './rules-source.js';
import { destination, TUNNEL_KEYS, type Tunnel, type TunnelKind } from './tunnel.js';

/** What forwarder.<name> of the data file asks for. */
export interface DesiredState {
  tunnels: Tunnel[];
  rules: NatRule[];
  /** False when the data file has no entry for this name (then nothing is wanted). */
  hasEntry: boolean;
}

export function desiredFromText(text: string, dataFile: string, name: string, sshUser: string | undefined): DesiredState {
  const entry = parseRules(text, dataFile).forwarder[name];
  if (entry === undefined) return { tunnels: [], rules: [], hasEntry: false };
  const tunnels: Tunnel[] = [];
  for (const kind of ['local', 'remote'] as const satisfies readonly TunnelKind[]) {
    for (const line of blockLines(entry[TUNNEL_KEYS[kind]])) {
      const { spec, host } = parseTunnelLine(line, TUNNEL_KEYS[kind]);
      tunnels.push({ kind, spec, host: destination(host, sshUser) });
    }
  }
  return { tunnels, rules: natRules(entry['iptables-rule']), hasEntry: true };
}

/** What the forwarder remembers between cycles about its rules' sources (see forwarder/rules-source.ts). */
export interface RulesMemory {
  /** The data file's fingerprint in the last cycle that used the API's copy. */
  fileAtLastApiUse?: string | undefined;
  /** Where the rules came from in the last cycle, as logged. */
  lastSource?: string | undefined;
}

export interface DesiredWithSource {
  desired: DesiredState;
  /** Where the rules came from: the ConfigMap through the API (with its resourceVersion) or the data file. */
  source: string;
}

/**
 * The desired state from the API's copy of the rules or from the data file, whichever is in force
 * (chooseRules). A data file that cannot be used is a ConfigError only when it is the one in force.
 */
export function desiredFromSources(
  settings: { dataFile: string; name: string; sshUser: string | undefined; rulesConfigMap: ConfigMapTarget | undefined },
  api: ApiRules | undefined,
  memory: RulesMemory,
): DesiredWithSource {
  let file: { text: string } | { error: string; cause: unknown };
  try {
    file = { text: readInputFile(settings.dataFile, INPUT_LIMITS.rulesFile) };
  } catch (error) {
    file = { error: errorMessage(error), cause: error };
  }
  const fingerprint = fileFingerprint(file);
  const choice = chooseRules(api, fingerprint, memory.fileAtLastApiUse);
  if (choice.from === 'api' && settings.rulesConfigMap !== undefined) {
    memory.fileAtLastApiUse = fingerprint;
    const target = describeTarget(settings.rulesConfigMap);
    return {
      desired: desiredFromText(choice.copy.text, target, settings.name, settings.sshUser),
      source: `${target} through the API, resourceVersion ${choice.copy.resourceVersion}${choice.live ? '' : ' (its last copy: the API cannot be reached)'}`,
    };
  }
  memory.fileAtLastApiUse = undefined;
  if ('error' in file) throw file.cause;
  return { desired: desiredFromText(file.text, settings.dataFile, settings.name, settings.sshUser), source: `data file ${settings.dataFile}` };
}
