import { ConfigError } from '../lib/errors.js';
import type { IpNames } from './names.js';

/**
 * Failover on keepalived (VRRP). Every gateway node runs one keepalived per IP, inside that IP's
 * network namespace, so that keepalived itself adds the address to the IP's macvlan, announces
 * it (gratuitous ARP) and removes it at once on BACKUP or FAULT. This module holds the pure
 * parts: the settings, the VRRP router id of an IP, the keepalived config, and the role a node
 * has for an IP.
 */

export interface VrrpSettings {
  /** 'managed': the gateway starts, reloads and stops keepalived; 'external': systemd (or another supervisor) runs it. */
  keepalived: 'managed' | 'external';
  /** 1..254: the highest priority among the nodes that are up wins an election. */
  priority: number;
  /** False (keepalived's nopreempt): a node that comes back does not take an IP back from a working holder. */
  preempt: boolean;
  /** Seconds between adverts; a standby takes over after 3 missed adverts (plus up to one for the skew). */
  advertIntervalS: number;
  /** The command keepalived runs on each transition; keepalived appends INSTANCE, the IP, the state and the priority. */
  notifyCommand: readonly string[];
}

export type VrrpState = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP' | 'DELETED';
export const VRRP_STATES: readonly VrrpState[] = ['MASTER', 'BACKUP', 'FAULT', 'STOP', 'DELETED'];

/** A transition keepalived announced through its notify command. */
export interface Announcement {
  state: VrrpState;
  priority: number;
  /**
   * When keepalived started the notify command (ms since the epoch, from the boot time in whole
   * seconds plus clock ticks): exact relative to other process start times, for ordering.
   */
  atMs: number;
  /** When the record was written (the file's modification time): for display. */
  writtenAtMs?: number | undefined;
}

/**
 * The VRRP router id of an IP: its last octet. It is the same on every node without any
 * configuration and stays the same when IPS_CONF is reordered or changed. Two IPs that share a
 * last octet cannot both fail over on one LAN.
 */
export function routerIdFor(ip: string): number {
  return Number(ip.split('.')[3]);
}

/** Rejects an IP list whose router ids collide or are out of range (a last octet of 0). */
export function checkRouterIds(ips: readonly string[], file: string): void {
  const byId = new Map<number, string>();
  for (const ip of ips) {
    const id = routerIdFor(ip);
    if (id < 1) throw new ConfigError(file, ip, `its VRRP router id would be its last octet, 0, which VRRP does not allow`);
    const other = byId.get(id);
    if (other !== undefined) throw new ConfigError(file, ip, `shares its last octet (the VRRP router id ${id}) with ${other}; with failover, the last octets of the IPs must differ`);
    byId.set(id, ip);
  }
}

/** What the rendered config needs to know about this node and the IP. */
export interface KeepalivedInputs {
  names: IpNames;
  prefixLength: number;
  defaultGateway: string;
  /** The source address of this node's adverts: the NIC's own IPv4 address (unique per node). */
  advertSource: string | undefined;
  /** The default route with quickack (see the routes' quickack in lib/routes.ts). */
  quickack: boolean;
  settings: VrrpSettings;
}

const HEADER = /^# k8s-ext-connector gateway: keepalived for (\S+) in netns (\S+)/;

/**
 * One vrrp_instance, named by the IP. The address and the default route are keepalived's to add
 * and remove (virtual_ipaddress, virtual_routes): the kernel drops a device's routes with its
 * last address, so the route must come back with the address, in the same step.
 */
export function renderKeepalivedConfig(inputs: KeepalivedInputs): string {
  const { names, settings } = inputs;
  const lines = [
    `# k8s-ext-connector gateway: keepalived for ${names.ip} in netns ${names.netns} (generated; changes are overwritten)`,
    'global_defs {',
    // The notify command runs as root; keepalived refuses it if a non-root user could replace it.
    '  script_user root',
    '  enable_script_security',
    // The devices are re-created by the gateway when they go missing.
    '  dynamic_interfaces',
    // Real-time priority when keepalived sees itself scheduled late, so that a busy node does not
    // miss adverts and lose its IPs.
    '  max_auto_priority',
    '}',
    `vrrp_instance ${names.ip} {`,
    // Every node starts as BACKUP: it takes the IP only when no advert from a holder arrives.
    '  state BACKUP',
    `  interface ${names.vrrpDevice}`,
    '  track_interface {',
    `    ${names.device}`,
    '  }',
    `  virtual_router_id ${routerIdFor(names.ip)}`,
    `  priority ${settings.priority}`,
    // VRRPv3 allows advert intervals below one second.
    '  version 3',
    `  advert_int ${settings.advertIntervalS}`,
    ...(inputs.advertSource ? [`  mcast_src_ip ${inputs.advertSource}`] : []),
    ...(settings.preempt ? [] : ['  nopreempt']),
    '  virtual_ipaddress {',
    `    ${names.ip}/${inputs.prefixLength} dev ${names.device}`,
    '  }',
    '  virtual_routes {',
    `    0.0.0.0/0 via ${inputs.defaultGateway} dev ${names.device}${inputs.quickack ? ' quickack 1' : ''}`,
    '  }',
    `  notify "${settings.notifyCommand.join(' ')}"`,
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** The IP and netns a config file written by renderKeepalivedConfig is for. */
export function parseKeepalivedHeader(config: string): { ip: string; netns: string } | undefined {
  const match = HEADER.exec(config);
  return match ? { ip: match[1] as string, netns: match[2] as string } : undefined;
}

/** keepalived as observed for one IP. */
export interface KeepalivedState {
  pidFileExists: boolean;
  pid?: number | undefined;
  /** The pid file names a live keepalived started with this IP's config. */
  running: boolean;
  /** When that keepalived started (ms since the epoch). */
  startedAtMs?: number | undefined;
  /** The pid of its VRRP child, when running. */
  vrrpPid?: number | undefined;
}

/**
 * The role of this node for an IP: what the running keepalived last announced. 'down' when no
 * keepalived runs for it, 'starting' when it has announced nothing since it started (an older
 * announcement came from an earlier keepalived and says nothing about this one).
 */
export type Role = VrrpState | 'down' | 'starting';

export function roleOf(keepalived: KeepalivedState | undefined, announced: Announcement | undefined): Role {
  if (!keepalived?.running) return 'down';
  if (!announced || (keepalived.startedAtMs !== undefined && announced.atMs < keepalived.startedAtMs)) return 'starting';
  return announced.state;
}
