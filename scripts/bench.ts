import { Command, InvalidArgumentError, Option } from 'commander';
import { preflightProblems } from '../lab/preflight.js';
import { benchChain, FULL_CHAIN, QUICK_CHAIN, renderChain, type ChainMeasurement } from './bench-chain.js';
import { benchController, type ControllerMeasurement } from './bench-controller.js';
import { benchControllerScale, renderControllerScale, type ControllerScaleMeasurement } from './bench-controller-scale.js';
import { benchFailover, renderFailover, type FailoverMeasurement } from './bench-failover.js';
import { benchGatewayScale, FULL_SCALE, QUICK_SCALE, renderGatewayScale, type GatewayScaleMeasurement } from './bench-gateway-scale.js';
import { benchGenrule, type GenruleMeasurement } from './bench-genrule.js';
import { benchIptablesApply, type IptablesApplyMeasurement } from './bench-iptables.js';
import { benchLatency, medianOf, type LatencyMeasurement } from './bench-latency.js';
import { median } from './stats.js';
import { benchRequests, type RequestMeasurement, type RequestTimes } from './bench-requests.js';
import { benchTunnel, type TunnelMeasurement } from './bench-tunnel.js';

/**
 * npm run bench: every number measured in this one run. Sections that need root (network
 * namespaces, iptables, sshd) are reported as skipped, with the reason, when they cannot run.
 */

interface Report {
  genrule?: GenruleMeasurement[];
  controller?: ControllerMeasurement[];
  controllerScale?: ControllerScaleMeasurement | string;
  iptables?: IptablesApplyMeasurement[];
  latency?: LatencyMeasurement;
  /** The same with the forwarder offering curve25519-sha256 as its only key exchange. */
  latencyCurve25519?: LatencyMeasurement;
  requests?: RequestMeasurement;
  tunnel?: TunnelMeasurement;
  failover?: FailoverMeasurement;
  gatewayScale?: GatewayScaleMeasurement;
  chain?: ChainMeasurement;
  skipped?: string;
}

/** genrule.py's kubectl lookups for one ExternalService of the bench's shape (4 sources x 2 ports, 2-port services). */
const ORIGINAL_CALLS_PER_EXTERNAL_SERVICE = 33;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)));
  const format = (cells: string[]): string => cells.map((cell, column) => cell.padStart(widths[column] ?? 0)).join('  ');
  return [format(header), format(widths.map((width) => '-'.repeat(width))), ...rows.map(format)].join('\n');
}

const ms = (value: number): string => value.toFixed(value < 10 ? 2 : 0);

function render(report: Report): string {
  const out: string[] = [];
  if (report.genrule) {
    out.push('Rule generation (N ExternalServices x 4 sources x 2 ports; services with 2 ports, 3 endpoints; 16 shared source IPs)');
    out.push(
      table(
        ['ExternalServices', 'rules lines', 'generation ms', 'YAML ms', 'kubectl calls', 'original calls', 'CLI ms'],
        report.genrule.map((row) => [
          String(row.externalServices),
          String(row.rulesLines),
          ms(row.generationMs),
          ms(row.serializeMs),
          String(row.kubectlCalls),
          String(row.externalServices * ORIGINAL_CALLS_PER_EXTERNAL_SERVICE),
          String(row.cliMs),
        ]),
      ),
    );
  }
  if (report.controller) {
    out.push('', 'Controller cycle (against the kubectl/scp stand-ins; process start of every stand-in call included)');
    out.push(
      table(
        ['ExternalServices', 'first: reads', 'first: writes', 'first: scp', 'first ms', 'steady: reads', 'steady: writes', 'steady: scp', 'steady ms'],
        report.controller.map((row) => [
          String(row.externalServices),
          String(row.firstCycle.kubectlReads),
          String(row.firstCycle.kubectlWrites),
          String(row.firstCycle.scp),
          String(row.firstCycle.ms),
          String(row.steadyCycle.kubectlReads),
          String(row.steadyCycle.kubectlWrites),
          String(row.steadyCycle.scp + row.steadyCycle.ssh),
          String(row.steadyCycle.ms),
        ]),
      ),
    );
  }
  if (report.controllerScale) out.push('', renderControllerScale(report.controllerScale, table));
  if (report.skipped) {
    out.push('', `Skipped (nat apply, change latency, short requests, tunnel throughput, failover, gateway at scale, whole chain): ${report.skipped}`);
    return out.join('\n');
  }
  if (report.iptables) {
    out.push('', 'nat table apply in a scratch namespace: one iptables-restore vs the original\'s flush + one iptables -A per rule');
    out.push(
      table(
        ['rules', 'restore ms', 'rule-by-rule ms', 'speedup', 'partial tables seen (restore)', 'partial tables seen (rule-by-rule)'],
        report.iptables.map((row) => [
          String(row.rules),
          ms(row.restoreMs),
          ms(row.ruleByRuleMs),
          `${row.speedup.toFixed(1)}x`,
          `${row.restorePartialReads} of ${row.restoreReads} reads`,
          `${row.ruleByRulePartialReads} of ${row.ruleByRuleReads} reads`,
        ]),
      ),
    );
  }
  for (const latency of [report.latency, report.latencyCurve25519]) {
    if (!latency) continue;
    const round = (value: number | undefined): string => (value === undefined ? '-' : String(Math.round(value)));
    const settings = Object.entries(latency.forwarderEnv).map(([name, value]) => `${name}=${value}`);
    out.push(
      '',
      settings.length > 0
        ? `The same with the forwarder's ${settings.join(' ')} (${latency.changes} changes):`
        : `Change-to-applied latency in the end-to-end lab (${latency.changes} changes, alternately dropping and restoring a source; gateway and forwarder get the rules at the same moment). ` +
            'Applied: from the publish to the end of the last forwarder and gateway cycle that changed something for it, from their debug logs (nothing probed meanwhile; the lab checked against the rules afterwards). ' +
            'Usable: until a request through each source works, or fails for a removed one (four requests, one Node start each).',
    );
    out.push(
      table(
        ['change', 'applied: median ms', 'applied: max ms', 'forwarder: median', 'gateway: median', 'usable: median ms', 'usable: max ms', 'samples (applied, ms)', 'the original'],
        (['removal', 'addition'] as const).map((kind) => {
          const samples = kind === 'addition' ? latency.additions : latency.removals;
          return [
            kind,
            round(median(samples.appliedMs)),
            round(Math.max(...samples.appliedMs)),
            round(median(samples.forwarderMs)),
            round(median(samples.gatewayMs)),
            round(median(samples.usableMs)),
            round(Math.max(...samples.usableMs)),
            samples.appliedMs.map(round).join(', '),
            'up to 10,000 (a sync every 10 s)',
          ];
        }),
      ),
    );
    const steps = latency.additionSteps;
    const retried = steps.tunnelRetries.filter((count) => count > 0).length;
    out.push(
      `  where an addition's time goes (median ms after the publish): gateway saw the change ${round(medianOf(steps.gatewaySawChange))}, ` +
        `reloaded its sshd ${round(medianOf(steps.gatewayReloadedSshd))}, done ${round(median(latency.additions.gatewayMs))}; forwarder saw the change ${round(medianOf(steps.forwarderSawChange))}, ` +
        `started ssh ${round(medianOf(steps.forwarderStartedSsh))}, done ${round(median(latency.additions.forwarderMs))}; usable ${round(median(latency.additions.usableMs))}. ` +
        `A tunnel start was refused or restarted in ${retried} of ${steps.tunnelRetries.length} additions.`,
    );
  }
  if (report.requests) {
    const count = report.requests.paths[0]?.toExternal.count ?? 0;
    out.push('', `Short requests in the end-to-end lab: ${count} sequential HTTP/1.0 requests per row, each on a new connection, the reply written as headers then body`);
    out.push("  the client and the lab's HTTP servers run on node --no-opt: V8's optimizing compiles otherwise stall single requests by 1-2 ms on every path, tunnel or not");
    const row = (direction: string, name: string, times: RequestTimes): string[] => [
      direction,
      name,
      ms(times.p50Ms),
      ms(times.p99Ms),
      ms(times.maxMs),
      `${times.over10Ms} of ${times.count}`,
    ];
    const names: Record<string, string> = { direct: 'direct (no tunnel)', original: "the original's tunnels", forwarder: "bin/forwarder's and bin/gateway's" };
    out.push(
      table(
        ['direction', 'path', 'p50 ms', 'p99 ms', 'max ms', 'over 10 ms'],
        [
          ...report.requests.paths.map((entry) => row('pod -> external server (-L)', names[entry.path] ?? entry.path, entry.toExternal)),
          ...report.requests.paths.map((entry) => row('external server -> pod (-R)', names[entry.path] ?? entry.path, entry.toPod)),
        ],
      ),
    );
  }
  if (report.tunnel) {
    const { tunnel } = report;
    out.push('', `Tunnel throughput, ${tunnel.bytes / 1e6} MB per transfer (median of 5)`);
    out.push(
      table(
        ['path', 'MB/s', "vs the original's tunnel"],
        [
          ['direct (no tunnel)', tunnel.directMBps.toFixed(0), (tunnel.directMBps / tunnel.originalMBps).toFixed(2)],
          ["the original's ssh -g -f -N -L (OpenSSH's default cipher)", tunnel.originalMBps.toFixed(0), '1.00'],
          [`bin/forwarder's -L tunnel (${tunnel.forwarderCipher} first)`, tunnel.forwarderMBps.toFixed(0), tunnel.forwarderVsOriginal.toFixed(2)],
        ],
      ),
    );
  }
  if (report.failover) out.push('', renderFailover(report.failover, table));
  if (report.gatewayScale) out.push('', renderGatewayScale(report.gatewayScale, table));
  if (report.chain) out.push('', renderChain(report.chain, table));
  return out.join('\n');
}

const SECTIONS = ['genrule', 'controller', 'controller-scale', 'iptables', 'latency', 'requests', 'tunnel', 'failover', 'gateway-scale', 'chain'] as const;
type Section = (typeof SECTIONS)[number];
const ROOT_SECTIONS: readonly Section[] = ['iptables', 'latency', 'requests', 'tunnel', 'failover', 'gateway-scale', 'chain'];

const program = new Command('bench')
  .description('measure rule generation, the controller cycle, nat apply, change latency, short requests, tunnel throughput, failover, the gateway at scale and the whole chain in cluster mode in one run')
  .addOption(new Option('--json', 'print the measurements as JSON instead of tables'))
  .addOption(new Option('--quick', 'smaller sizes (for a fast look; the numbers in the README come from a full run)'))
  .addOption(new Option('--only <sections...>', 'run only these sections').choices(SECTIONS))
  .addOption(
    new Option('--scale-count <n>', 'ExternalServices of the controller-scale section (default 1000, 100 with --quick)').argParser((value) => {
      const count = Number(value);
      if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
      return count;
    }),
  )
  .action(async (options: { json?: boolean; quick?: boolean; only?: Section[]; scaleCount?: number }) => {
    const progress = (text: string): void => void process.stderr.write(`bench: ${text}\n`);
    const wanted = new Set<Section>(options.only ?? SECTIONS);
    const sizes = options.quick ? [10, 50] : [10, 50, 200];
    const report: Report = {};
    if (wanted.has('genrule')) {
      progress(`rule generation for ${sizes.join('/')} ExternalServices`);
      report.genrule = await benchGenrule(sizes);
    }
    if (wanted.has('controller')) {
      progress('controller cycles');
      report.controller = await benchController(sizes);
    }
    if (wanted.has('controller-scale')) {
      const count = options.scaleCount ?? (options.quick ? 100 : 1000);
      progress(`the controller with ${count} ExternalServices against a real control plane`);
      report.controllerScale = await benchControllerScale(count, progress);
    }
    const problems = ROOT_SECTIONS.some((section) => wanted.has(section)) ? preflightProblems() : [];
    if (problems.length > 0) {
      report.skipped = problems.join(' ');
    } else {
      if (wanted.has('iptables')) {
        progress('nat table apply');
        report.iptables = await benchIptablesApply(options.quick ? [10, 100] : [10, 100, 1000]);
      }
      if (wanted.has('latency')) {
        progress('change-to-applied latency in the lab');
        report.latency = await benchLatency(options.quick ? 4 : 10);
        progress("change-to-applied latency in the lab, the forwarder's key exchange curve25519-sha256 only");
        report.latencyCurve25519 = await benchLatency(options.quick ? 4 : 6, { SSH_OPTIONS: 'KexAlgorithms=curve25519-sha256' });
      }
      if (wanted.has('requests')) {
        progress(`short requests through the tunnels in the lab (${options.quick ? 200 : 1000} per path and direction)`);
        report.requests = await benchRequests(options.quick ? 200 : 1000);
      }
      if (wanted.has('tunnel')) {
        progress('tunnel throughput');
        report.tunnel = await benchTunnel(options.quick ? 50e6 : 200e6);
      }
      if (wanted.has('failover')) {
        progress('failover between two gateway nodes');
        report.failover = await benchFailover(options.quick ? 3 : 4);
      }
      if (wanted.has('gateway-scale')) {
        const scale = options.quick ? QUICK_SCALE : FULL_SCALE;
        progress(`bin/gateway with ${scale.ips} IPs and the rules of ${scale.externalServices} ExternalServices, beside the original's setup`);
        report.gatewayScale = await benchGatewayScale(scale, progress);
      }
      if (wanted.has('chain')) {
        const chain = options.quick ? QUICK_CHAIN : FULL_CHAIN;
        progress(`the whole chain in cluster mode: ${chain.watchChanges} changes with the forwarder's API watch, ${chain.volumeChanges} with the volume only`);
        report.chain = await benchChain(chain, progress);
      }
    }
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${render(report)}\n`);
  });

await program.parseAsync(process.argv);
