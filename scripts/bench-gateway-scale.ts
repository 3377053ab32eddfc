import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { serializeSnapshot, snapshotFromObjects } from '../controller/snapshot.js';
import { run } from '../lib/exec.js';
import { blockLines, parseRules } from '../lib/rules.js';
import { BIN, gatewayEnv, prepareConnector, spawnGateway, teardownGateway, type Connector } from '../lab/connector.js';
import { cleanUpOnInterrupt, hostLikeArgv, Lab, waitFor, type LabProcess } from '../lab/netns.js';
import { flushAndAdd, setUpOriginalIp } from '../lab/original.js';
import { buildNetwork, type Network } from '../lab/topology.js';
import { clusterFor, confText } from './bench-genrule.js';
import { median } from './stats.js';

/**
 * bin/gateway at scale on the lab's gateway host: `ips` source IPs (100) in ips.conf and the rules
 * `bin/controller genrule --snapshot` writes for `externalServices` (1,000) ExternalServices x 4
 * sources x 2 ports spread over those IPs (the genrule section's shape). Measured:
 * - setup: from starting the gateway loop until the end of the cycle after which
 *   `bin/gateway status --json` reports every IP applied (netns, device, address, routes, sshd,
 *   nat table);
 * - a steady cycle with nothing to do: in the running loop (the rules file published again, the
 *   cycle timed from the gateway's own log), and as `bin/gateway --once` (process start included);
 * - the memory of the sshds the gateway started (RSS, and PSS from smaps_rollup);
 * - the same for the original (its commands as lab/original.ts runs them): the setup of every IP
 *   (namespace, macvlan, address, route, sshd) and then its first cycle of nat rules (per IP
 *   `iptables -t nat -F` and one `iptables -A` per rule), a later cycle (which applies every rule
 *   again, with nothing changed), and the memory of its sshds. When the first IP's rules predict
 *   more than ORIGINAL_BUDGET_MS for the rules of every IP, the original stops there and the
 *   output says so, with the prediction.
 */

export interface GatewayScaleOptions {
  ips: number;
  externalServices: number;
  steadyCycles: number;
  /** Later cycles of the original (each applies every rule again). */
  originalCycles: number;
}

export const FULL_SCALE: GatewayScaleOptions = { ips: 100, externalServices: 1000, steadyCycles: 5, originalCycles: 1 };
export const QUICK_SCALE: GatewayScaleOptions = { ips: 20, externalServices: 200, steadyCycles: 3, originalCycles: 1 };

/** The most the original's rule-by-rule apply of every IP may be predicted to take for the bench to run it (per cycle). */
export const ORIGINAL_BUDGET_MS = 10 * 60_000;

export interface MemoryFigures {
  processes: number;
  rssKiB: number[];
  /** Undefined when smaps_rollup could not be read. */
  pssKiB?: number[] | undefined;
}

export interface GatewayScaleMeasurement {
  ips: number;
  externalServices: number;
  rulesBytes: number;
  /** nat rules of all gateway blocks, and of the largest one. */
  gatewayRules: number;
  maxRulesPerIp: number;
  /** PermitOpen and PermitListen entries of the largest sshd config. */
  maxPermitOpen: number;
  maxPermitListen: number;
  genruleMs: number;
  setup: {
    /** Start of bin/gateway until the end of the cycle that status then found complete. */
    ms: number;
    /** Until status --json had confirmed it. */
    confirmedMs: number;
    cycles: number;
  };
  /** Cycles of the running loop after the rules file was published again (from the gateway's log). */
  steadyLoopMs: number[];
  steadyLoopIdle: boolean;
  /** `bin/gateway --once` runs, process start included. */
  steadyOnceMs: number[];
  steadyOnceIdle: boolean;
  sshd: MemoryFigures;
  teardownMs: number;
  original: {
    /** Namespace, macvlan, address, route and sshd of every IP, one after the other. */
    initMs: number;
    /** The first IP's nat apply: its rules and the time. */
    firstIpRules: number;
    firstIpMs: number;
    /** The rules of every IP at this rate (the prediction the budget is checked against). */
    predictedNatMs: number;
    /** Undefined when the prediction was over the budget and the rest was not run. */
    setupMs?: number | undefined;
    /** Later cycles: every IP's rules applied again. */
    cyclesMs: number[];
    sshd: MemoryFigures;
  };
  /** The 1-minute load average, sampled every 5 s during the section. */
  load: number[];
}

const SOURCE_BASE = 20;
const LOG_TIME = /^(\S+) /;
const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);

/** The lab's LAN is 192.168.122.0/24; the bench's IPs are .20 onwards (the lab's own hosts are .1, .10, .139, .192, .193, .200, .201). */
function scaleIps(count: number): string[] {
  if (count < 1 || count > 100) throw new Error(`gateway-scale: 1 to 100 IPs, not ${count}`);
  return Array.from({ length: count }, (_, index) => `192.168.122.${SOURCE_BASE + index}`);
}

/** One line per gateway log event: its time (ms since the epoch) and text. */
function logEvents(handle: LabProcess): { atMs: number; text: string }[] {
  return handle
    .output()
    .split('\n')
    .map((line) => ({ atMs: Date.parse(LOG_TIME.exec(line)?.[1] ?? ''), text: line }))
    .filter((event) => Number.isFinite(event.atMs));
}

/** The loop logs this at the end of every cycle (LOG_LEVEL=debug), unless a change came in during the cycle. */
const CYCLE_END = 'for the next cycle';
const IDLE = 'everything is in place';
const CHANGE_SEEN = 'change seen, reconciling';

function memoryOf(pids: readonly number[]): MemoryFigures {
  const rssKiB: number[] = [];
  const pssKiB: number[] = [];
  let pssReadable = true;
  for (const pid of pids) {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    rssKiB.push(Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN));
    try {
      pssKiB.push(Number(/^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN));
    } catch {
      pssReadable = false;
    }
  }
  if (rssKiB.some((value) => !Number.isFinite(value))) throw new Error('VmRSS missing from /proc/PID/status');
  return { processes: pids.length, rssKiB, pssKiB: pssReadable && pssKiB.every(Number.isFinite) ? pssKiB : undefined };
}

/** Samples the 1-minute load average every 5 s, and once more when stopped (the first stop only). */
function sampleLoad(): { samples: number[]; stop: () => void } {
  const samples = [os.loadavg()[0] ?? 0];
  const timer = setInterval(() => samples.push(os.loadavg()[0] ?? 0), 5000);
  timer.unref();
  let running = true;
  return {
    samples,
    stop: () => {
      if (!running) return;
      running = false;
      clearInterval(timer);
      samples.push(os.loadavg()[0] ?? 0);
    },
  };
}

interface GatewayStatusJson {
  ok: boolean;
  problems: string[];
  ips: { ip: string; ok: boolean; problems: string[]; sshd: { running: boolean; pid?: number } }[];
}

export async function benchGatewayScale(options: GatewayScaleOptions = FULL_SCALE, progress: (text: string) => void = () => undefined): Promise<GatewayScaleMeasurement> {
  const lab = new Lab('k8xbg');
  // Everything the section makes is the lab's or carries its prefix (the gateway's namespaces).
  const sweep = async (): Promise<void> => {
    lab.adoptLeftovers();
    await lab.cleanup();
  };
  // On SIGINT/SIGTERM: remove the lab at once (the step in progress then fails), wait until the
  // section has stopped, and remove what it made in the meantime.
  let flowStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (flowStopped = resolve));
  const interrupt = { seen: false };
  const removeHandler = cleanUpOnInterrupt(async () => {
    interrupt.seen = true;
    await sweep();
    await stopped;
    await sweep();
  });
  const load = sampleLoad();
  const ips = scaleIps(options.ips);
  try {
    const network = await buildNetwork(lab);
    const key = await lab.sshKeypair();
    const connector = prepareConnector(lab);
    fs.writeFileSync(connector.ipsConf, `# ${ips.length} source IPs of the gateway-scale bench\n${ips.join('\n')}\n`);

    // The rules: genrule from a snapshot of the bench's cluster and one conf file per ExternalService.
    const snapshotFile = path.join(connector.dir, 'scale-snapshot.json');
    fs.writeFileSync(snapshotFile, serializeSnapshot(snapshotFromObjects(clusterFor(options.externalServices))));
    for (let index = 0; index < options.externalServices; index++) {
      fs.writeFileSync(path.join(connector.confDir, `es-${String(index).padStart(4, '0')}.yaml`), confText(index, (serial) => ips[serial % ips.length] as string));
    }
    const started = performance.now();
    const generated = await run(BIN('controller'), ['genrule', '--snapshot', snapshotFile, connector.confDir], { env: { NO_COLOR: '1' }, timeoutMs: 300_000 });
    const genruleMs = performance.now() - started;
    const rulesText = generated.stdout;
    const rules = parseRules(rulesText, 'genrule output');
    const perIp = ips.map((ip) => blockLines(rules.gateway[ip]?.['iptables-rule']).length);
    if (perIp.some((count) => count === 0)) throw new Error(`genrule wrote no gateway rules for ${ips[perIp.indexOf(0)]}`);
    fs.writeFileSync(connector.rulesFile, rulesText);

    progress(`gateway-scale: bin/gateway with ${ips.length} IPs (setup, ${options.steadyCycles} cycles in the loop and with --once, teardown)`);
    const measured = await measureGateway(lab, network, connector, key, options, interrupt);
    progress(`gateway-scale: the original with ${ips.length} IPs (setup, then ${options.originalCycles} cycle(s) if they fit the budget)`);
    const original = await measureOriginal(lab, network, ips, rulesText, key, options.originalCycles, interrupt);
    load.stop();
    return {
      ips: ips.length,
      externalServices: options.externalServices,
      rulesBytes: Buffer.byteLength(rulesText),
      gatewayRules: sum(perIp),
      maxRulesPerIp: Math.max(...perIp),
      ...measured.permits,
      genruleMs,
      setup: measured.setup,
      steadyLoopMs: measured.steadyLoopMs,
      steadyLoopIdle: measured.steadyLoopIdle,
      steadyOnceMs: measured.steadyOnceMs,
      steadyOnceIdle: measured.steadyOnceIdle,
      sshd: measured.sshd,
      teardownMs: measured.teardownMs,
      original,
      load: load.samples,
    };
  } finally {
    load.stop();
    flowStopped();
    // After an interrupt the handler removes the rest and exits.
    if (interrupt.seen) await new Promise(() => undefined);
    await sweep();
    removeHandler();
  }
}

type GatewayFigures = Pick<GatewayScaleMeasurement, 'setup' | 'steadyLoopMs' | 'steadyLoopIdle' | 'steadyOnceMs' | 'steadyOnceIdle' | 'sshd' | 'teardownMs'> & {
  permits: Pick<GatewayScaleMeasurement, 'maxPermitOpen' | 'maxPermitListen'>;
};

/** Stops the section at its next step once it was interrupted. */
function checkpoint(interrupt: { seen: boolean }): void {
  if (interrupt.seen) throw new Error('interrupted');
}

async function measureGateway(
  lab: Lab,
  network: Network,
  connector: Connector,
  key: { publicKey: string },
  options: GatewayScaleOptions,
  interrupt: { seen: boolean },
): Promise<GatewayFigures> {
  const env = gatewayEnv(connector, key);
  const gatewayCommand = async (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
    const argv = hostLikeArgv(network.gatewayHost, [BIN('gateway'), ...args, connector.ipsConf]);
    const begun = performance.now();
    const result = await run(argv[0] as string, argv.slice(1), { env: { ...env, ...extraEnv }, reject: false, timeoutMs: 600_000 });
    return { ...result, ms: performance.now() - begun };
  };
  const status = async (): Promise<GatewayStatusJson> => {
    const result = await gatewayCommand(['status', '--json', '--rules-file', connector.rulesFile]);
    if (result.exitCode !== 0 && result.exitCode !== 1) throw new Error(`gateway status failed (exit ${result.exitCode}): ${result.stderr}`);
    return JSON.parse(result.stdout) as GatewayStatusJson;
  };
  const publishAgain = (): void => {
    fs.copyFileSync(connector.rulesFile, `${connector.rulesFile}.tmp`);
    fs.renameSync(`${connector.rulesFile}.tmp`, connector.rulesFile);
  };
  const cycleEnds = (handle: LabProcess) => logEvents(handle).filter((event) => event.text.includes(CYCLE_END));

  // Setup: the loop from its start; after each cycle, the gateway's own status says whether all is applied.
  const startedAtMs = Date.now();
  const gateway = spawnGateway(lab, network, connector, key, path.join(lab.tempDir, 'gateway-scale.log'), { LOG_LEVEL: 'debug', INTERVAL: '3600' });
  let setup: GatewayScaleMeasurement['setup'] | undefined;
  let last: GatewayStatusJson | undefined;
  for (let cycles = 1; cycles <= 5 && !setup; cycles++) {
    const end = await waitFor(() => (checkpoint(interrupt), cycleEnds(gateway)[cycles - 1]), 900_000, `the end of the gateway's cycle ${cycles}`, gateway);
    last = await status();
    if (last.ok) setup = { ms: end.atMs - startedAtMs, confirmedMs: Date.now() - startedAtMs, cycles };
    // A failed cycle is retried by the loop; a complete one that left something is not, before the interval.
    else if (!logEvents(gateway).some((event) => event.text.includes(`cycle ${cycles} failed`))) publishAgain();
  }
  if (!setup) {
    const wrong = last?.ips.filter((entry) => !entry.ok).map((entry) => `${entry.ip}: ${entry.problems.join('; ')}`) ?? [];
    throw new Error(`the gateway did not apply every IP in 5 cycles: ${[...(last?.problems ?? []), ...wrong].slice(0, 5).join(' | ')}\n${gateway.output().slice(-4000)}`);
  }

  // Steady cycles in the loop: the same rules published again (by rename, as the controller does).
  const steadyLoopMs: number[] = [];
  let steadyLoopIdle = true;
  for (let index = 0; index < options.steadyCycles; index++) {
    const before = logEvents(gateway).length;
    const ends = cycleEnds(gateway).length;
    publishAgain();
    await waitFor(() => (checkpoint(interrupt), cycleEnds(gateway).length > ends ? true : undefined), 600_000, 'a steady cycle of the gateway', gateway);
    const events = logEvents(gateway).slice(before);
    const seen = events.find((event) => event.text.includes(CHANGE_SEEN));
    const end = events.find((event) => event.text.includes(CYCLE_END));
    if (!seen || !end) throw new Error(`the gateway's log has no cycle start and end for a republished rules file:\n${events.map((event) => event.text).join('\n')}`);
    if (!events.some((event) => event.text.includes(IDLE))) steadyLoopIdle = false;
    steadyLoopMs.push(end.atMs - seen.atMs);
  }

  // The sshds the gateway started, as its own status names them, read while the loop runs.
  last = await status();
  const runDirMarker = `${connector.runDir}/sshd-`;
  const pids = last.ips.map((entry) => entry.sshd.pid).filter((pid): pid is number => pid !== undefined);
  if (pids.length !== last.ips.length) throw new Error(`status --json lists ${pids.length} running sshds for ${last.ips.length} IPs`);
  for (const pid of pids) {
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(runDirMarker)) throw new Error(`pid ${pid} is not an sshd of the gateway's run dir`);
  }
  const sshd = memoryOf(pids);
  const permits = { maxPermitOpen: 0, maxPermitListen: 0 };
  for (const file of fs.readdirSync(connector.runDir).filter((name) => /^sshd-[0-9a-f]{8}\.conf$/.test(name))) {
    const config = fs.readFileSync(path.join(connector.runDir, file), 'utf8');
    const count = (keyword: string): number => (new RegExp(`^${keyword} (.*)$`, 'm').exec(config)?.[1] ?? 'none').split(' ').filter((word) => word !== 'none').length;
    permits.maxPermitOpen = Math.max(permits.maxPermitOpen, count('PermitOpen'));
    permits.maxPermitListen = Math.max(permits.maxPermitListen, count('PermitListen'));
  }

  // The loop stops (its sshds keep running); then `--once` cycles with nothing to do.
  await lab.stop(gateway);
  const steadyOnceMs: number[] = [];
  let steadyOnceIdle = true;
  for (let index = 0; index < options.steadyCycles; index++) {
    checkpoint(interrupt);
    const once = await gatewayCommand(['--once', '--rules-file', connector.rulesFile], { LOG_LEVEL: 'debug' });
    if (once.exitCode !== 0) throw new Error(`bin/gateway --once failed (exit ${once.exitCode}): ${once.stderr}`);
    if (!once.stderr.includes(IDLE)) steadyOnceIdle = false;
    steadyOnceMs.push(once.ms);
  }

  const teardownStarted = performance.now();
  await teardownGateway(lab, network, connector);
  const teardownMs = performance.now() - teardownStarted;
  const left = Lab.leftovers(connector.netnsPrefix);
  if (left.length > 0) throw new Error(`bin/gateway teardown left ${left.length} namespaces`);
  return { setup, steadyLoopMs, steadyLoopIdle, steadyOnceMs, steadyOnceIdle, sshd, permits, teardownMs };
}

async function measureOriginal(
  lab: Lab,
  network: Network,
  ips: readonly string[],
  rulesText: string,
  key: { publicKey: string },
  cycles: number,
  interrupt: { seen: boolean },
): Promise<GatewayScaleMeasurement['original']> {
  const rules = parseRules(rulesText, 'genrule output');
  const blocks = ips.map((ip) => rules.gateway[ip]?.['iptables-rule']);
  const totalRules = sum(blocks.map((block) => blockLines(block).length));
  // One host key for all, as the original's sshds share the host's.
  const hostKey = (await lab.sshKeypair('original_host_key')).privateKey;
  const set: { ns: string; sshdPid: number; block: string | undefined }[] = [];
  const begun = performance.now();
  // The original's init: every IP set up, one after the other; then its first cycle applies the rules.
  for (const [index, ip] of ips.entries()) {
    checkpoint(interrupt);
    set.push({ ...(await setUpOriginalIp(lab, network.gatewayHost, ip, key, hostKey)), block: blocks[index] });
  }
  const initMs = performance.now() - begun;
  const applyAll = async (entries: typeof set): Promise<void> => {
    for (const { ns, block } of entries) {
      checkpoint(interrupt);
      await flushAndAdd(lab, ns, block);
    }
  };
  const firstStarted = performance.now();
  await applyAll(set.slice(0, 1));
  const firstIpMs = performance.now() - firstStarted;
  const firstIpRules = blockLines(blocks[0]).length;
  const predictedNatMs = (firstIpMs / Math.max(1, firstIpRules)) * totalRules;
  let setupMs: number | undefined;
  const cyclesMs: number[] = [];
  if (predictedNatMs <= ORIGINAL_BUDGET_MS) {
    await applyAll(set.slice(1));
    setupMs = performance.now() - begun;
    for (let cycle = 0; cycle < cycles; cycle++) {
      const started = performance.now();
      await applyAll(set);
      cyclesMs.push(performance.now() - started);
    }
  }
  const sshd = memoryOf(set.map((entry) => entry.sshdPid));
  for (const { ns } of set) await lab.removeNetns(ns);
  return { initMs, firstIpRules, firstIpMs, predictedNatMs, setupMs, cyclesMs, sshd };
}

const mib = (kib: number): string => (kib / 1024).toFixed(1);
const seconds = (ms: number, digits = 1): string => (ms / 1000).toFixed(digits);

function perProcess(values: readonly number[]): string {
  return `${mib(median(values))} (${mib(Math.min(...values))}-${mib(Math.max(...values))})`;
}

/** The gateway-scale table: bin/gateway's figures beside the original's where this run measured them. */
export function renderGatewayScale(m: GatewayScaleMeasurement, table: (header: string[], rows: string[][]) => string): string {
  const { original } = m;
  const ran = original.setupMs !== undefined;
  const notRun = `not run at ${m.ips} IPs (below)`;
  const ratio = (ours: number, theirs: number | undefined): string => (theirs === undefined ? '-' : `${(theirs / ours).toFixed(theirs / ours < 10 ? 2 : 0)}x`);
  const memoryRows = (name: string, pick: (figures: MemoryFigures) => number[] | undefined): string[][] => {
    const ours = pick(m.sshd);
    const theirs = pick(original.sshd);
    if (!ours) return [[`sshd ${name}`, '/proc/PID/smaps_rollup unreadable', '-', '-']];
    return [
      [`sshd ${name}: sum of ${m.sshd.processes} sshds (MiB)`, mib(sum(ours)), theirs ? mib(sum(theirs)) : '-', theirs ? ratio(sum(ours), sum(theirs)) : '-'],
      [`sshd ${name} per IP: median (min-max) (MiB)`, perProcess(ours), theirs ? perProcess(theirs) : '-', theirs ? ratio(median(ours), median(theirs)) : '-'],
    ];
  };
  const steady = (samples: readonly number[], idle: boolean): string => `${seconds(median(samples), 2)}${idle ? '' : ' (NOT idle)'}`;
  const originalCycle = original.cyclesMs.length > 0 ? median(original.cyclesMs) : undefined;
  const load = m.load.length > 0 ? `${Math.min(...m.load).toFixed(1)} to ${Math.max(...m.load).toFixed(1)}` : '-';
  const msPerRule = original.firstIpMs / Math.max(1, original.firstIpRules);
  return [
    `bin/gateway with ${m.ips} IPs on the lab's gateway host; rules from genrule for ${m.externalServices} ExternalServices x 4 sources x 2 ports over those IPs ` +
      `(${(m.rulesBytes / 1e6).toFixed(1)} MB; ${m.gatewayRules} nat rules, up to ${m.maxRulesPerIp} per IP; up to ${m.maxPermitOpen} PermitOpen and ${m.maxPermitListen} PermitListen per sshd)`,
    table(
      ['measure', 'bin/gateway', 'the original', 'the original / bin/gateway'],
      [
        ['setup: start until every IP is applied (s)', seconds(m.setup.ms), ran ? seconds(original.setupMs as number) : notRun, ratio(m.setup.ms, original.setupMs)],
        [
          `cycle with nothing to do, in the loop (s): median of ${m.steadyLoopMs.length}; the original: ${original.cyclesMs.length === 1 ? 'one cycle' : `median of ${original.cyclesMs.length}`}`,
          steady(m.steadyLoopMs, m.steadyLoopIdle),
          originalCycle === undefined ? notRun : seconds(originalCycle),
          ratio(median(m.steadyLoopMs), originalCycle),
        ],
        [`cycle with nothing to do, bin/gateway --once (s): median of ${m.steadyOnceMs.length}`, steady(m.steadyOnceMs, m.steadyOnceIdle), '-', '-'],
        ...memoryRows('RSS', (figures) => figures.rssKiB),
        ...memoryRows('PSS', (figures) => figures.pssKiB),
        ['teardown: bin/gateway teardown (s)', seconds(m.teardownMs), '-', '-'],
      ],
    ),
    `  bin/gateway: setup took ${m.setup.cycles} cycle(s), status --json confirmed it ${seconds(m.setup.confirmedMs)} s after the start; cycles with nothing to do (ms): ` +
      `in the loop ${m.steadyLoopMs.map(Math.round).join(', ')}, --once ${m.steadyOnceMs.map(Math.round).join(', ')}; genrule took ${seconds(m.genruleMs)} s.`,
    `  the original (its commands as the lab runs them, without its checks and its per-IP python read of the whole rules file): namespace, macvlan, address, route and sshd of ${m.ips} IPs in ${seconds(original.initMs)} s; ` +
      `the first IP's ${original.firstIpRules} rules (iptables -t nat -F, one iptables -A per rule) in ${seconds(original.firstIpMs)} s (${Math.round(msPerRule)} ms per rule), ` +
      (ran
        ? `then every IP's; each cycle applies all ${m.gatewayRules} rules again, also with nothing changed.`
        : `which predicts ${(original.predictedNatMs / 60_000).toFixed(0)} min for all ${m.gatewayRules} rules, in its setup and again in every cycle: over the bench's ${ORIGINAL_BUDGET_MS / 60_000} min, so not run.`),
    `  load average (1 min) during the section: ${load} (2 cores).`,
  ].join('\n');
}
