import { ConfigError, quote } from './errors.js';
import { hostProblem, sshDestinationProblem } from './hosts.js';
import { ownAddress, parseRuleLine, RuleSyntaxError, type NatRule } from './iptables.js';
import { unicastIPv4Problem } from './ipv4.js';
import { dumpLiteralYaml, isPlainObject, parseYaml } from './yaml.js';

/**
 * The rules document that genrule writes, the ConfigMap's data.yaml holds and the gateway reads
 * from its rules file. Every value is a block of lines, one rule per line, each ending in "\n".
 */

/**
 * The most lines one block of the document may hold (one forwarder's tunnels or rules of a kind,
 * one gateway IP's rules): about 1 MiB of text, half of what the YAML writer can take in one
 * string before its own checks overflow the stack.
 */
export const MAX_BLOCK_LINES = 8192;

export const FORWARDER_KEYS = ['iptables-rule', 'remote-ssh-tunnel', 'ssh-tunnel'] as const;
export type ForwarderKey = (typeof FORWARDER_KEYS)[number];
export type ForwarderEntry = Record<ForwarderKey, string>;
export interface GatewayEntry {
  'iptables-rule': string;
}

export interface RulesDocument {
  forwarder: Record<string, ForwarderEntry>;
  gateway: Record<string, GatewayEntry>;
}

export function emptyRules(): RulesDocument {
  return { forwarder: {}, gateway: {} };
}

/** Lines of a block, without the empty ones. */
export function blockLines(block: string | undefined): string[] {
  return (block ?? '').split('\n').filter((line) => line.trim() !== '');
}

/** Lines to a block: each line followed by "\n"; no lines is "". */
export function toBlock(lines: readonly string[]): string {
  return lines.map((line) => `${line}\n`).join('');
}

/** genrule.py's exact output layout (see dumpLiteralYaml). */
export function serializeRules(rules: RulesDocument): string {
  return dumpLiteralYaml(rules);
}

/** A tunnel line `SPEC,HOST` split at its last comma. */
export interface TunnelLine {
  spec: string;
  host: string;
}

/** What each `:`-separated part of a tunnel spec is. */
const SPEC_PARTS: Record<'ssh-tunnel' | 'remote-ssh-tunnel', readonly ('PORT' | 'HOST' | 'BIND_IP')[]> = {
  'ssh-tunnel': ['PORT', 'HOST', 'PORT'],
  'remote-ssh-tunnel': ['BIND_IP', 'PORT', 'HOST', 'PORT'],
};

function portProblem(text: string): string | undefined {
  return /^[1-9]\d{0,4}$/.test(text) && Number(text) <= 65535 ? undefined : 'is not a port (1..65535)';
}

/**
 * Parses one tunnel line: `PORT:HOST:PORT,SSH_HOST` (ssh-tunnel) or
 * `BIND_IP:PORT:HOST:PORT,SSH_HOST` (remote-ssh-tunnel). Every part is checked (ports 1..65535,
 * hosts unicast IPv4 addresses or host names, SSH_HOST `[user@]host`), so that nothing in it can
 * reach ssh as an option. Throws RuleSyntaxError with the reason.
 */
export function parseTunnelLine(line: string, kind: 'ssh-tunnel' | 'remote-ssh-tunnel'): TunnelLine {
  const trimmed = line.trim();
  const parts = SPEC_PARTS[kind];
  const comma = trimmed.lastIndexOf(',');
  const spec = comma === -1 ? '' : trimmed.slice(0, comma);
  const host = comma === -1 ? '' : trimmed.slice(comma + 1);
  const values = spec.split(':');
  if (comma === -1 || values.length !== parts.length) throw new RuleSyntaxError(`${quote(trimmed)} is not ${parts.join(':')},SSH_HOST`);
  for (const [index, part] of parts.entries()) {
    const value = values[index] as string;
    const problem = part === 'PORT' ? portProblem(value) : hostProblem(value);
    if (problem !== undefined) throw new RuleSyntaxError(`${quote(trimmed)}: ${part} ${quote(value)} ${problem}`);
  }
  const destinationProblem = sshDestinationProblem(host);
  if (destinationProblem !== undefined) throw new RuleSyntaxError(`${quote(trimmed)}: SSH_HOST ${destinationProblem}`);
  return { spec, host };
}

function checkBlock(value: unknown, file: string, field: string, check: (line: string) => unknown): string {
  if (value === undefined) throw new ConfigError(file, field, 'is missing (an empty block is written "")');
  if (value === null) throw new ConfigError(file, field, 'has no value (a truncated file?)');
  if (typeof value !== 'string') throw new ConfigError(file, field, 'must be a block of lines (a string)');
  const lines = value.split('\n');
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    try {
      check(line);
    } catch (error) {
      if (error instanceof RuleSyntaxError) throw new ConfigError(file, `${field} line ${index + 1}`, error.message);
      throw error;
    }
  });
  return value;
}

/** A rule line that must belong to `address` (see ownAddress); `address` undefined: any. */
function parseOwnRule(line: string, address: string | undefined, what: string): NatRule {
  const rule = parseRuleLine(line);
  const own = ownAddress(rule);
  if (address !== undefined && own !== address) throw new RuleSyntaxError(`the rule is for ${own}, not ${what} ${address}`);
  return rule;
}

/** A section or entry: a mapping (with only the given keys, when they are given). */
function checkEntry(entry: unknown, keys: readonly string[] | undefined, file: string, field: string): Record<string, unknown> {
  if (entry === null) throw new ConfigError(file, field, 'has no value (a truncated file?)');
  if (!isPlainObject(entry)) throw new ConfigError(file, field, 'must be a mapping');
  for (const key of Object.keys(entry)) {
    if (keys && !keys.includes(key)) throw new ConfigError(file, `${field}.${key}`, 'unknown key');
  }
  return entry;
}

/**
 * Parses and checks a rules document. Anything malformed (empty file, wrong shape, a rule that
 * does not parse) is a ConfigError naming the file and field, so that the caller keeps what it
 * has applied.
 */
export function parseRules(text: string, file: string): RulesDocument {
  if (text.trim() === '') throw new ConfigError(file, undefined, 'rules file is empty');
  const data = parseYaml(text, file);
  if (!isPlainObject(data)) throw new ConfigError(file, undefined, 'rules file must be a mapping with "forwarder" and "gateway"');
  for (const key of Object.keys(data)) {
    if (key !== 'forwarder' && key !== 'gateway') throw new ConfigError(file, key, 'unknown top-level key');
  }
  // Both sections are always written (`{}` when empty): one missing or empty means a truncated
  // or foreign document, which must not be read as "no rules".
  for (const section of ['forwarder', 'gateway'] as const) {
    if (!(section in data)) throw new ConfigError(file, section, 'is missing (a rules document has both "forwarder" and "gateway", {} when empty)');
    checkEntry(data[section], undefined, file, section);
  }
  const rules = emptyRules();
  const forwarder = data.forwarder as Record<string, unknown>;
  for (const [name, value] of Object.entries(forwarder)) {
    const field = `forwarder.${name}`;
    const entry = checkEntry(value, FORWARDER_KEYS, file, field);
    // Every rule of a forwarder belongs to its pod's one IP (the first rule names it).
    let podIP: string | undefined;
    rules.forwarder[name] = {
      'iptables-rule': checkBlock(entry['iptables-rule'], file, `${field}.iptables-rule`, (line) => {
        const own = ownAddress(parseOwnRule(line, podIP, "the forwarder pod's IP"));
        podIP ??= own;
      }),
      'remote-ssh-tunnel': checkBlock(entry['remote-ssh-tunnel'], file, `${field}.remote-ssh-tunnel`, (line) => parseTunnelLine(line, 'remote-ssh-tunnel')),
      'ssh-tunnel': checkBlock(entry['ssh-tunnel'], file, `${field}.ssh-tunnel`, (line) => parseTunnelLine(line, 'ssh-tunnel')),
    };
  }
  const gateway = data.gateway as Record<string, unknown>;
  for (const [ip, value] of Object.entries(gateway)) {
    const keyProblem = unicastIPv4Problem(ip);
    if (keyProblem !== undefined) throw new ConfigError(file, `gateway.${ip}`, `the key ${keyProblem}`);
    const entry = checkEntry(value, ['iptables-rule'], file, `gateway.${ip}`);
    rules.gateway[ip] = {
      'iptables-rule': checkBlock(entry['iptables-rule'], file, `gateway.${ip}.iptables-rule`, (line) => parseOwnRule(line, ip, 'this gateway IP')),
    };
  }
  return rules;
}

/** The rules of a block as NatRules (the block was checked by parseRules). */
export function natRules(block: string | undefined): NatRule[] {
  return blockLines(block).map(parseRuleLine);
}
