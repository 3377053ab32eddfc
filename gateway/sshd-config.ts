import { GATEWAY_CIPHERS } from '../lib/ciphers.js';
import type { RulesDocument } from '../lib/rules.js';
import { blockLines, parseTunnelLine } from '../lib/rules.js';
import type { IpNames } from './names.js';

/**
 * The config of the sshd that serves one gateway IP, with the least privilege it needs. Each sshd gets
 * its own generated file; the host's /etc/ssh/sshd_config is never read or edited. Forwarding is
 * limited to what the current rules need: the -R tunnels that bind on this IP (PermitListen) and
 * the targets of the -L tunnels that connect through it (PermitOpen).
 */

export interface Permits {
  /** host:port that `ssh -L` may open through this sshd. */
  open: string[];
  /** host:port that `ssh -R` may bind on this sshd. */
  listen: string[];
}

export interface SshdAccess {
  /** Only this user may log in (AllowUsers); root may not, unless it is this user. */
  sshUser?: string | undefined;
  /** AuthorizedKeysFile for every user (otherwise sshd's default ~/.ssh/authorized_keys). */
  authorizedKeysFile?: string | undefined;
  hostKeys: readonly string[];
  /** The only ciphers the sshd accepts (default: AES-GCM and chacha20-poly1305). */
  ciphers?: readonly string[] | undefined;
}

const HEADER = /^# k8s-ext-connector gateway: sshd for (\S+) in netns (\S+)/;

function hostOf(sshHost: string): string {
  return sshHost.replace(/^.*@/, '');
}

/** The forwarding the rules need through the sshd of `ip`. */
export function permitsFor(rules: RulesDocument, ip: string): Permits {
  const open = new Set<string>();
  const listen = new Set<string>();
  for (const entry of Object.values(rules.forwarder)) {
    for (const line of blockLines(entry['ssh-tunnel'])) {
      const tunnel = parseTunnelLine(line, 'ssh-tunnel');
      if (hostOf(tunnel.host) !== ip) continue;
      const [, targetHost, targetPort] = tunnel.spec.split(':');
      open.add(`${targetHost}:${targetPort}`);
    }
    for (const line of blockLines(entry['remote-ssh-tunnel'])) {
      const tunnel = parseTunnelLine(line, 'remote-ssh-tunnel');
      if (hostOf(tunnel.host) !== ip) continue;
      const [bindHost, bindPort] = tunnel.spec.split(':');
      listen.add(`${bindHost}:${bindPort}`);
    }
  }
  return { open: [...open].sort(), listen: [...listen].sort() };
}

/**
 * The forwarding the rules need through the sshd of every IP the tunnels name, in one pass over
 * the document's tunnel lines: for each IP the same as permitsFor(rules, IP), which reads every
 * line again for each IP (100 IPs and 16,000 tunnel lines took seconds). An IP no tunnel names
 * is absent.
 */
export function permitsByHost(rules: RulesDocument): Map<string, Permits> {
  const open = new Map<string, Set<string>>();
  const listen = new Map<string, Set<string>>();
  const add = (byHost: Map<string, Set<string>>, host: string, value: string): void => {
    const values = byHost.get(host);
    if (values) values.add(value);
    else byHost.set(host, new Set([value]));
  };
  for (const entry of Object.values(rules.forwarder)) {
    for (const line of blockLines(entry['ssh-tunnel'])) {
      const tunnel = parseTunnelLine(line, 'ssh-tunnel');
      const [, targetHost, targetPort] = tunnel.spec.split(':');
      add(open, hostOf(tunnel.host), `${targetHost}:${targetPort}`);
    }
    for (const line of blockLines(entry['remote-ssh-tunnel'])) {
      const tunnel = parseTunnelLine(line, 'remote-ssh-tunnel');
      const [bindHost, bindPort] = tunnel.spec.split(':');
      add(listen, hostOf(tunnel.host), `${bindHost}:${bindPort}`);
    }
  }
  const hosts = new Set([...open.keys(), ...listen.keys()]);
  return new Map(
    [...hosts].map((host): [string, Permits] => [host, { open: [...(open.get(host) ?? [])].sort(), listen: [...(listen.get(host) ?? [])].sort() }]),
  );
}

/** The permits an existing config grants (kept while the rules file cannot be read). */
export function permitsInConfig(config: string): Permits {
  const values = (keyword: string): string[] =>
    config
      .split('\n')
      .filter((line) => line.startsWith(`${keyword} `))
      .flatMap((line) => line.split(/\s+/).slice(1))
      .filter((value) => value !== '' && value !== 'none');
  return { open: values('PermitOpen'), listen: values('PermitListen') };
}

export function renderSshdConfig(names: IpNames, access: SshdAccess, permits: Permits): string {
  const user = access.sshUser;
  const lines = [
    `# k8s-ext-connector gateway: sshd for ${names.ip} in netns ${names.netns} (generated; changes are overwritten)`,
    `ListenAddress ${names.ip}`,
    `PidFile ${names.pidFile}`,
    ...access.hostKeys.map((key) => `HostKey ${key}`),
    ...(access.authorizedKeysFile ? [`AuthorizedKeysFile ${access.authorizedKeysFile}`] : []),
    ...(user ? [`AllowUsers ${user}`] : []),
    `PermitRootLogin ${user && user !== 'root' ? 'no' : 'prohibit-password'}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'HostbasedAuthentication no',
    'UsePAM no',
    // Authenticated-encryption ciphers only; the client's order picks the fastest for its CPU.
    `Ciphers ${(access.ciphers ?? GATEWAY_CIPHERS).join(',')}`,
    // Tunnels only: no terminal, no shell, nothing else forwarded.
    'PermitTTY no',
    'ForceCommand /bin/false',
    'PermitUserRC no',
    'PermitUserEnvironment no',
    'X11Forwarding no',
    'AllowAgentForwarding no',
    'AllowStreamLocalForwarding no',
    'PermitTunnel no',
    'AllowTcpForwarding yes',
    'GatewayPorts clientspecified',
    `PermitOpen ${permits.open.length > 0 ? permits.open.join(' ') : 'none'}`,
    `PermitListen ${permits.listen.length > 0 ? permits.listen.join(' ') : 'none'}`,
    // Drops tunnels whose client has gone, so that their ports are free for its successor.
    'ClientAliveInterval 15',
    'ClientAliveCountMax 3',
  ];
  return `${lines.join('\n')}\n`;
}

/** The IP and netns a config file written by renderSshdConfig is for. */
export function parseConfigHeader(config: string): { ip: string; netns: string } | undefined {
  const match = HEADER.exec(config);
  return match ? { ip: match[1] as string, netns: match[2] as string } : undefined;
}
