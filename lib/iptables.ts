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

const SAFE_WORD = /^[\w.:/,!=+@%-]+$/;
const CHAIN_NAME = /^[A-Za-z][\w-]{0,28}$/;

export class RuleSyntaxError extends Error {
  override name = 'RuleSyntaxError';
}

/** Parses one rule line of the rules file. Throws RuleSyntaxError with the reason. */
export function parseRuleLine(line: string): NatRule {
  const words = line.trim().split(/\s+/).filter((word) => word !== '');
  const [chain, ...rest] = words;
  if (chain === undefined) throw new RuleSyntaxError('empty rule');
  if (!CHAIN_NAME.test(chain)) throw new RuleSyntaxError(`rule must start with a chain name, not "${chain}"`);
  const args: string[] = [];
  for (let index = 0; index < rest.length; index++) {
    const word = rest[index] as string;
    if (!SAFE_WORD.test(word)) throw new RuleSyntaxError(`unexpected characters in "${word}"`);
    if (word === '-t' || word === '--table') {
      const table = rest[index + 1];
      if (table !== 'nat') throw new RuleSyntaxError(`only the nat table is managed, not "${table ?? ''}"`);
      index++;
      continue;
    }
    args.push(word);
  }
  const jump = args.findIndex((word) => word === '-j' || word === '--jump');
  if (jump === -1 || args[jump + 1] === undefined) throw new RuleSyntaxError('rule has no target (-j)');
  for (let index = 0; index < args.length; index++) {
    const word = args[index] as string;
    if (word.startsWith('-') && !/^-{1,2}[a-zA-Z]/.test(word)) {
      throw new RuleSyntaxError(`bad option "${word}"`);
    }
  }
  return { chain, args };
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
