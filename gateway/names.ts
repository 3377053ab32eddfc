import path from 'node:path';
import { ipToHex } from '../lib/ipv4.js';

/** Where the gateway keeps one IP: the original's naming, with the netns prefix and run dir overridable. */
export interface IpNames {
  ip: string;
  /** The four octets as %02x: 192.168.122.200 -> c0a87ac8. */
  hex: string;
  netns: string;
  /** macvlan<hex>: exactly 15 characters, the kernel's limit for a device name. */
  device: string;
  /**
   * A fixed, locally administered MAC per IP (02:6b:<the four octets>): a device re-created for
   * the same IP keeps its MAC, so the neighbours' ARP caches stay right.
   */
  mac: string;
  pidFile: string;
  configFile: string;
  /**
   * With failover: a second macvlan with this node's own (kernel-chosen) MAC that carries the
   * VRRP adverts. The adverts cannot use the device above: a macvlan drops multicast whose
   * source MAC is its own, and the standby's device has the same MAC as the holder's.
   */
  vrrpDevice: string;
  keepalivedConfig: string;
  keepalivedPidFile: string;
  keepalivedVrrpPidFile: string;
}

export interface Placement {
  netnsPrefix: string;
  runDir: string;
}

export function namesFor(ip: string, placement: Placement): IpNames {
  const hex = ipToHex(ip);
  return {
    ip,
    hex,
    netns: `${placement.netnsPrefix}${hex}`,
    device: `macvlan${hex}`,
    mac: `02:6b:${hex.match(/../g)?.join(':') ?? ''}`,
    pidFile: path.join(placement.runDir, `sshd-${hex}.pid`),
    configFile: path.join(placement.runDir, `sshd-${hex}.conf`),
    vrrpDevice: `vrrp${hex}`,
    keepalivedConfig: path.join(placement.runDir, `keepalived-${hex}.conf`),
    keepalivedPidFile: path.join(placement.runDir, `keepalived-${hex}.pid`),
    keepalivedVrrpPidFile: path.join(placement.runDir, `keepalived-${hex}-vrrp.pid`),
  };
}

/** Where keepalived's notify command records each VRRP transition (one file per transition, see vrrp-state.ts). */
export function vrrpStateDir(runDir: string): string {
  return path.join(runDir, 'vrrp-state');
}

/** Matches the config files this gateway writes into its run dir. */
export const CONFIG_FILE_PATTERN = /^sshd-([0-9a-f]{8})\.conf$/;

/** The host key generated into the run dir when the host key dir has none. */
export function generatedHostKeyPath(runDir: string): string {
  return path.join(runDir, 'sshd-host-keys', 'ssh_host_ed25519_key');
}
