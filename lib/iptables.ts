import { quote } from './errors.js';
import { unicastIPv4Problem } from './ipv4.js';

/**
 * nat-table rules as the rules file states them (`PREROUTING -t nat -m tcp -p tcp --dst ...`),
 * the same rules as `iptables-save` prints them (`-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp ...`),
 * a canonical form to compare the two, and the `iptables-restore` input that replaces the whole
 * nat table in one commit.
 */

export interface NatRule {
  chain: string;
  /** The rule's words after the chain, without `-t nat`. */
  args: readonly string[];
}

export const BUILTIN_NAT_CHAINS = ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'] as const;

export class RuleSyntaxError extends Error {
  override name = 'RuleSyntaxError';
}

/** Where a shape takes a value: an address, a port, or address:port. */
const IP = Symbol('IP');
const PORT = Symbol('PORT');
const IP_PORT = Symbol('IP:PORT');
type Word = string | typeof IP | typeof PORT | typeof IP_PORT;

/**
 * The only rules accepted: the two shapes genrule writes, word for word. Everything else that
 * could reach iptables-restore (another table, a flush, a policy, a module path, another target)
 * is refused, whatever its spelling.
 */
const RULE_SHAPES: Record<string, readonly Word[]> = {
  PREROUTING: ['PREROUTING', '-t', 'nat', '-m', 'tcp', '-p', 'tcp', '--dst', IP, '--src', IP, '--dport', PORT, '-j', 'DNAT', '--to-destination', IP_PORT],
  POSTROUTING: ['POSTROUTING', '-t', 'nat', '-m', 'tcp', '-p', 'tcp', '--dst', IP, '--dport', PORT, '-j', 'SNAT', '--to-source', IP],
};

function shapeText(shape: readonly Word[]): string {
  return shape.map((word) => (typeof word === 'string' ? word : word.description)).join(' ');
}

const PORT_TEXT = /^[1-9]\d{0,4}$/;

/** Why `word` cannot fill a value slot, or undefined when it can. */
function valueProblem(slot: typeof IP | typeof PORT | typeof IP_PORT, word: string): string | undefined {
  if (slot === PORT) return PORT_TEXT.test(word) && Number(word) <= 65535 ? undefined : 'is not a port (1..65535)';
  if (slot === IP) return unicastIPv4Problem(word);
  const colon = word.lastIndexOf(':');
  if (colon === -1) return 'is not IP:PORT';
  return valueProblem(IP, word.slice(0, colon)) ?? valueProblem(PORT, word.slice(colon + 1));
}

/**
 * Parses one rule line of the rules file: exactly one of RULE_SHAPES, with unicast addresses and
 * ports 1..65535. Throws RuleSyntaxError with the reason.
 */
export function parseRuleLine(line: string): NatRule {
  const words = line.trim().split(/\s+/).filter((word) => word !== '');
  const [chain] = words;
  if (chain === undefined) throw new RuleSyntaxError('empty rule');
  const shape = RULE_SHAPES[chain];
  if (shape === undefined) {
    const accepted = Object.values(RULE_SHAPES).map(shapeText).join('" or "');
    throw new RuleSyntaxError(`only "${accepted}" rules are accepted, not one starting with ${quote(chain)}`);
  }
  // Built for an error message only: building it for every rule was a tenth of parsing a large rules file.
  const expected = (): string => `(a ${chain} rule is "${shapeText(shape)}")`;
  for (const [index, slot] of shape.entries()) {
    const word = words[index];
    if (word === undefined) throw new RuleSyntaxError(`ends after ${index} words ${expected()}`);
    if (typeof slot === 'string') {
      if (word !== slot) throw new RuleSyntaxError(`${quote(word)} where ${quote(slot)} belongs ${expected()}`);
      continue;
    }
    const problem = valueProblem(slot, word);
    if (problem !== undefined) throw new RuleSyntaxError(`${shape[index - 1] as string} ${quote(word)}: ${problem}`);
  }
  if (words.length > shape.length) throw new RuleSyntaxError(`${quote(words[shape.length])} after the end of the rule ${expected()}`);
  // Without `-t nat`: iptables-restore input names the table once, for all rules.
  const rule = { chain, args: words.slice(3) };
  if (chain === 'PREROUTING') {
    const target = (rule.args[rule.args.length - 1] as string).replace(/:\d+$/, '');
    const destination = rule.args[5] as string;
    if (target !== destination) throw new RuleSyntaxError(`DNAT to ${target} where only the rule's own --dst ${destination} is accepted`);
  }
  return rule;
}

/**
 * The address a rule of the accepted shapes belongs to: the one a DNAT rule redirects to (its
 * --dst), the one an SNAT rule gives as source. It is the forwarder pod's IP in a forwarder entry
 * and the gateway IP in a gateway entry.
 */
export function ownAddress(rule: NatRule): string {
  return rule.chain === 'PREROUTING' ? (rule.args[5] as string) : (rule.args[rule.args.length - 1] as string);
}

const ALIASES: Record<string, string> = {
  '--src': '-s',
  '--source': '-s',
  '--dst': '-d',
  '--destination': '-d',
  '--protocol': '-p',
  '--jump': '-j',
  '--match': '-m',
  '--destination-port': '--dport',
  '--source-port': '--sport',
  '--in-interface': '-i',
  '--out-interface': '-o',
  '--goto': '-g',
};

/** An order-free form in which a rule and its iptables-save rendering are equal. */
export function canonicalRule(rule: NatRule): string {
  const groups: string[][] = [];
  for (const word of rule.args) {
    const isOption = /^-{1,2}[a-zA-Z]/.test(word);
    if (isOption || word === '!' || groups.length === 0) {
      const last = groups[groups.length - 1];
      if (last && last.length === 1 && last[0] === '!') last.push(ALIASES[word] ?? word);
      else groups.push([isOption ? (ALIASES[word] ?? word) : word]);
    } else {
      (groups[groups.length - 1] as string[]).push(word);
    }
  }
  const kept = groups
    .map((group) => {
      const option = group.find((word) => word !== '!') ?? '';
      if (option === '-s' || option === '-d') return group.map((word) => word.replace(/\/32$/, ''));
      return group;
    })
    // `-m tcp` / `-m udp` are implied by `-p tcp --dport`; iptables-save prints them either way.
    .filter((group) => !(group[0] === '-m' && (group[1] === 'tcp' || group[1] === 'udp') && group.length === 2))
    .map((group) => group.join(' '))
    .sort();
  return [rule.chain, ...kept].join(' ');
}

/** A table as `iptables-save` shows it: its rules in order and every chain it declares. */
export interface NatTable {
  rules: NatRule[];
  chains: string[];
}

/** The rules of one table in `iptables-save` output, in order. */
export function parseIptablesSave(text: string, table = 'nat'): NatTable {
  const rules: NatRule[] = [];
  const chains: string[] = [];
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      inTable = line === `*${table}`;
      continue;
    }
    if (!inTable) continue;
    if (line === 'COMMIT') {
      inTable = false;
      continue;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0];
      if (name) chains.push(name);
      continue;
    }
    if (line.startsWith('-A ')) {
      const [, chain, ...args] = line.split(/\s+/);
      if (chain) rules.push({ chain, args });
    }
  }
  return { rules, chains };
}

/** True when the live rules are the desired ones, in the same order within each chain. */
export function sameRules(live: readonly NatRule[], desired: readonly NatRule[]): boolean {
  if (live.length !== desired.length) return false;
  const byChain = (rules: readonly NatRule[]): string =>
    [...new Set(rules.map((rule) => rule.chain))]
      .sort()
      .map((chain) => rules.filter((rule) => rule.chain === chain).map(canonicalRule).join('\n'))
      .join('\n--\n');
  return byChain(live) === byChain(desired);
}

/**
 * True when the live nat table holds exactly `desired`: the same rules in the same order within
 * each chain, and no chain besides the built-in ones and those the desired rules use.
 */
export function natTableMatches(live: NatTable, desired: readonly NatRule[]): boolean {
  const builtin = new Set<string>(BUILTIN_NAT_CHAINS);
  const wantedChains = new Set(desired.map((rule) => rule.chain));
  const strayChain = live.chains.some((chain) => !builtin.has(chain) && !wantedChains.has(chain));
  return !strayChain && sameRules(live.rules, desired);
}

/** iptables-restore input that replaces the whole nat table with `rules` in one commit. */
export function natRestoreInput(rules: readonly NatRule[]): string {
  const builtin = new Set<string>(BUILTIN_NAT_CHAINS);
  const custom = [...new Set(rules.map((rule) => rule.chain).filter((chain) => !builtin.has(chain)))];
  const lines = ['*nat'];
  for (const chain of BUILTIN_NAT_CHAINS) lines.push(`:${chain} ACCEPT [0:0]`);
  for (const chain of custom) lines.push(`:${chain} - [0:0]`);
  for (const rule of rules) lines.push(['-A', rule.chain, ...rule.args].join(' '));
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
