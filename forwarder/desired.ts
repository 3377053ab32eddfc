import { INPUT_LIMITS, readInputFile } from '../lib/input-file.js';
import type { NatRule } from '../lib/iptables.js';
import { blockLines, natRules, parseRules, parseTunnelLine } from '../lib/rules.js';
import { destination, TUNNEL_KEYS, type Tunnel, type TunnelKind } from './tunnel.js';

/** What forwarder.<name> of the data file asks for. */
export interface DesiredState {
  tunnels: Tunnel[];
  rules: NatRule[];
  /** False when the data file has no entry for this name (then nothing is wanted). */
  hasEntry: boolean;
}

/**
 * Reads the data file (the ConfigMap's data.yaml). A file that cannot be read or parsed is a
 * ConfigError naming the file and field: the caller keeps what it has applied.
 */
export async function readDesired(dataFile: string, name: string, sshUser: string | undefined): Promise<DesiredState> {
  return desiredFromText(readInputFile(dataFile, INPUT_LIMITS.rulesFile), dataFile, name, sshUser);
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
