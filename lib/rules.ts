import { ConfigError } from './errors.js';
import { parseRuleLine, RuleSyntaxError, type NatRule } from './iptables.js';
import { isIPv4 } from './ipv4.js';
import { dumpLiteralYaml, isPlainObject, parseYaml } from './yaml.js';

/**
 * The rules document that genrule writes, the ConfigMap's data.yaml holds and the gateway reads
 * from its rules file. Every value is a block of lines, one rule per line, each ending in "\n".
 */

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

const LOCAL_SPEC = /^\d{1,5}:[\w.-]+:\d{1,5}$/;
const REMOTE_SPEC = /^[\w.-]+:\d{1,5}:[\w.-]+:\d{1,5}$/;
const HOST = /^([\w.-]+@)?[\w.-]+$/;

export function parseTunnelLine(line: string, kind: 'ssh-tunnel' | 'remote-ssh-tunnel'): TunnelLine {
  const trimmed = line.trim();
  const comma = trimmed.lastIndexOf(',');
  const spec = comma === -1 ? '' : trimmed.slice(0, comma);
  const host = comma === -1 ? '' : trimmed.slice(comma + 1);
  const specPattern = kind === 'ssh-tunnel' ? LOCAL_SPEC : REMOTE_SPEC;
  if (!specPattern.test(spec) || !HOST.test(host)) {
    const shape = kind === 'ssh-tunnel' ? 'PORT:HOST:PORT,SSH_HOST' : 'BIND_IP:PORT:HOST:PORT,SSH_HOST';
    throw new RuleSyntaxError(`"${trimmed}" is not ${shape}`);
  }
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
    rules.forwarder[name] = {
      'iptables-rule': checkBlock(entry['iptables-rule'], file, `${field}.iptables-rule`, parseRuleLine),
      'remote-ssh-tunnel': checkBlock(entry['remote-ssh-tunnel'], file, `${field}.remote-ssh-tunnel`, (line) => parseTunnelLine(line, 'remote-ssh-tunnel')),
      'ssh-tunnel': checkBlock(entry['ssh-tunnel'], file, `${field}.ssh-tunnel`, (line) => parseTunnelLine(line, 'ssh-tunnel')),
    };
  }
  const gateway = data.gateway as Record<string, unknown>;
  for (const [ip, value] of Object.entries(gateway)) {
    if (!isIPv4(ip)) throw new ConfigError(file, `gateway.${ip}`, 'key must be an IPv4 address');
    const entry = checkEntry(value, ['iptables-rule'], file, `gateway.${ip}`);
    rules.gateway[ip] = { 'iptables-rule': checkBlock(entry['iptables-rule'], file, `gateway.${ip}.iptables-rule`, parseRuleLine) };
  }
  return rules;
}

/** The rules of a block as NatRules (the block was checked by parseRules). */
export function natRules(block: string | undefined): NatRule[] {
  return blockLines(block).map(parseRuleLine);
}
