import { performance } from 'node:perf_hooks';
import { natRestoreInput, parseIptablesSave, parseRuleLine, type NatRule } from '../lib/iptables.js';
import { Lab } from '../lab/netns.js';
import { run } from '../lib/exec.js';

/**
 * Applying N nat rules in a scratch network namespace, two ways, in the same run:
 * - ours: one `iptables-restore` of the whole nat table (one atomic commit);
 * - the original's: `iptables -t nat -F`, then one `iptables -A` per rule.
 * While each runs, a watcher reads the table with iptables-save as fast as it can and counts the
 * reads that saw fewer rules than the full set ("moments without all rules").
 */

export interface IptablesApplyMeasurement {
  rules: number;
  restoreMs: number;
  ruleByRuleMs: number;
  speedup: number;
  restorePartialReads: number;
  restoreReads: number;
  ruleByRulePartialReads: number;
  ruleByRuleReads: number;
}

export function benchRules(count: number, variant = 0): NatRule[] {
  const rules: string[] = [];
  for (let index = 0; rules.length < count; index++) {
    const pod = `10.244.${Math.floor(index / 250) % 250}.${(index % 250) + 1}`;
    const port = 2049 + index + variant;
    rules.push(`PREROUTING -t nat -m tcp -p tcp --dst 10.244.255.50 --src ${pod} --dport 8000 -j DNAT --to-destination 10.244.255.50:${port}`);
    if (rules.length < count) rules.push(`POSTROUTING -t nat -m tcp -p tcp --dst 192.168.122.139 --dport ${port} -j SNAT --to-source 10.244.255.50`);
  }
  return rules.map(parseRuleLine);
}

async function countRules(ns: string): Promise<number> {
  const saved = await run('ip', ['netns', 'exec', ns, 'iptables-save', '-t', 'nat'], { reject: false });
  return parseIptablesSave(saved.stdout).rules.length;
}

/** Reads the table in a loop until stopped; returns [reads, reads that saw fewer than `full` rules]. */
function watchTable(ns: string, full: number): { stop: () => Promise<[number, number]> } {
  let running = true;
  let reads = 0;
  let partial = 0;
  const loop = (async () => {
    while (running) {
      const seen = await countRules(ns);
      if (!running) break;
      reads++;
      if (seen < full) partial++;
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return [reads, partial];
    },
  };
}

export async function benchIptablesApply(counts: readonly number[]): Promise<IptablesApplyMeasurement[]> {
  const lab = new Lab('k8xbi');
  const results: IptablesApplyMeasurement[] = [];
  try {
    const ns = await lab.netns('scratch');
    for (const count of counts) {
      // Start from a full table of other rules (a rules change, not a first fill).
      const before = benchRules(count, 1);
      const after = benchRules(count, 0);
      await run('ip', ['netns', 'exec', ns, 'iptables-restore'], { input: natRestoreInput(before) });

      const restoreWatch = watchTable(ns, count);
      let started = performance.now();
      await run('ip', ['netns', 'exec', ns, 'iptables-restore'], { input: natRestoreInput(after) });
      const restoreMs = performance.now() - started;
      const [restoreReads, restorePartialReads] = await restoreWatch.stop();
      if ((await countRules(ns)) !== count) throw new Error(`restore left ${await countRules(ns)} rules, expected ${count}`);

      await run('ip', ['netns', 'exec', ns, 'iptables-restore'], { input: natRestoreInput(before) });
      const ruleWatch = watchTable(ns, count);
      started = performance.now();
      await run('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-F']);
      for (const rule of after) {
        await run('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-A', rule.chain, ...rule.args]);
      }
      const ruleByRuleMs = performance.now() - started;
      const [ruleByRuleReads, ruleByRulePartialReads] = await ruleWatch.stop();

      results.push({
        rules: count,
        restoreMs,
        ruleByRuleMs,
        speedup: ruleByRuleMs / restoreMs,
        restoreReads,
        restorePartialReads,
        ruleByRuleReads,
        ruleByRulePartialReads,
      });
    }
  } finally {
    await lab.cleanup();
  }
  return results;
}
