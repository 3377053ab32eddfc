import type { ChalkInstance } from 'chalk';
import {
  buildFailoverLab,
  EXPECTED,
  failOver,
  FAILOVER_IPS,
  HolderSampler,
  nodeStatus,
  setLink,
  startFailoverLab,
  startProbes,
  stopFailoverLab,
  waitForRole,
  waitForTraffic,
  wrongAnswers,
  type FailoverLab,
  type FailoverTiming,
  type GatewayNode,
} from '../lab/failover.js';
import type { Lab } from '../lab/netns.js';
import { ADDRESSES } from '../lab/topology.js';

/**
 * `npm run demo -- --failover`: the lab with two gateway nodes on keepalived (see
 * lab/failover.ts). Node A holds the IPs, node B is the standby; node A loses its link, node B
 * takes the IPs over, and the timings are shown while requests run both ways every 100 ms.
 */

export interface DemoOutput {
  say(text?: string): void;
  step(text: string): void;
  chalk: ChalkInstance;
}

async function showRoles(fl: FailoverLab, out: DemoOutput): Promise<void> {
  for (const node of [fl.nodes.A, fl.nodes.B]) {
    const status = await nodeStatus(fl, node);
    const roles = status
      .split('\n')
      .filter((line) => /^\S+: /.test(line) || line.trimStart().startsWith('vrrp '))
      .map((line) => line.trim());
    out.say(`  node ${node.name} (${node.address}, priority ${node.priority}) ${out.chalk.dim(`$ bin/gateway status ips.conf`)}`);
    for (let index = 0; index + 1 < roles.length; index += 2) out.say(`    ${roles[index]?.split(':')[0]}  ${roles[index + 1]?.replace(/^vrrp\s+/, '')}`);
  }
}

export async function failoverDemo(lab: Lab, out: DemoOutput, onLab: (fl: FailoverLab) => void): Promise<string> {
  const { say, step, chalk } = out;
  step('Building the failover lab: an external server, a k8s node with pods, and two gateway nodes on the LAN');
  const fl = await buildFailoverLab(lab);
  onLab(fl);
  say(`  gateway node A ${ADDRESSES.gatewayHost} (priority 150), gateway node B ${ADDRESSES.standbyHost} (priority 100); spare IPs ${FAILOVER_IPS.join(', ')}`);
  say('  both nodes run bin/gateway with FAILOVER=on, the same ips.conf, the same rules and the same host key (HOST_KEY_DIR)');

  step('Starting node A, then node B: one keepalived per IP decides the holder; the forwarder checks host keys strictly');
  await startFailoverLab(fl);
  await showRoles(fl, out);

  step('Traffic both ways, every 100 ms: my-pod1 -> external server (as 192.168.122.200), external server -> my-pod1 (through it)');
  await startProbes(fl);
  await waitForTraffic(fl, Date.now(), 60_000);
  const sampler = new HolderSampler(fl);
  sampler.start();
  let timing: FailoverTiming;
  try {
    say('  both ways work through node A');

    const [active, standby]: [GatewayNode, GatewayNode] = [fl.nodes.A, fl.nodes.B];
    step(`Node A loses its link to the LAN (as if it died): ip link set ${active.lanPort} down`);
    timing = await failOver(fl, sampler, active, standby, 'link');
    const line = (what: string, value: number, target: number): string =>
      `  ${what.padEnd(50)} ${(value < target ? chalk.green : chalk.red)(`${String(Math.round(value)).padStart(5)} ms`)}  (target < ${target} ms)`;
    say(line('node B holds 192.168.122.200 after', timing.ipMovedMs, 3000));
    say(line('my-pod1 -> external server (as .200) again after', timing.podToExternalMs, 10_000));
    say(line('external server -> my-pod1 again after', timing.externalToPodMs, 10_000));
    await waitForRole(active, 'FAULT');
    await showRoles(fl, out);

    step('Node A gets its link back: it joins as the standby (nopreempt), node B keeps the IPs');
    await setLink(fl, active, true);
    await waitForRole(active, 'BACKUP');
    await waitForTraffic(fl, Date.now());
    await showRoles(fl, out);
  } finally {
    await sampler.stop();
  }
  const probes = fl.probes!;
  const answered = [...probes.podToExternal.results(), ...probes.externalToPod.results()].filter((result) => result.ok).length;
  const wrong = wrongAnswers(probes.podToExternal, EXPECTED.podToExternal).length + wrongAnswers(probes.externalToPod, EXPECTED.externalToPod).length;
  const doubles = sampler.doubleHolders().length;
  say(`  requests answered with a wrong source IP: ${(wrong === 0 ? chalk.green : chalk.red)(String(wrong))} of ${answered}`);
  say(`  100 ms samples with two holders of one IP: ${(doubles === 0 ? chalk.green : chalk.red)(String(doubles))} of ${sampler.samples.length}`);
  if (wrong > 0 || doubles > 0) throw new Error('a request was answered with a wrong source IP, or an IP had two holders');

  step('Tearing down: stopping both gateways, bin/gateway teardown on each node, removing the lab');
  await stopFailoverLab(fl);
  return (
    `node B held the IPs ${Math.round(timing.ipMovedMs)} ms after node A lost its link; traffic flowed again ` +
    `${Math.round(Math.max(timing.podToExternalMs, timing.externalToPodMs))} ms after it, always from the same source IP.`
  );
}
