/**
 * An ssh tunnel as the forwarder starts it and as `ps` shows it. Its identity is the original's:
 * the kind plus `SPEC,HOST`, the last two words of the command line, so that tunnels started by
 * an earlier forwarder (or by the original) are recognised.
 */

export type TunnelKind = 'local' | 'remote';

export interface Tunnel {
  kind: TunnelKind;
  spec: string;
  /** The destination exactly as written on the ssh command line (`HOST` or `USER@HOST`). */
  host: string;
}

export interface RunningTunnel extends Tunnel {
  pid: number;
}

/** The words that mark a tunnel's command line, right before `SPEC HOST`. */
export const TUNNEL_MARKERS: Record<TunnelKind, readonly string[]> = {
  local: ['-g', '-f', '-N', '-L'],
  remote: ['-f', '-N', '-R'],
};

/** Which rules-file key holds each kind. */
export const TUNNEL_KEYS: Record<TunnelKind, 'ssh-tunnel' | 'remote-ssh-tunnel'> = {
  local: 'ssh-tunnel',
  remote: 'remote-ssh-tunnel',
};

export function tunnelLine(tunnel: Tunnel): string {
  return `${tunnel.spec},${tunnel.host}`;
}

export function tunnelKey(tunnel: Tunnel): string {
  return `${tunnel.kind} ${tunnelLine(tunnel)}`;
}

/** How the forwarder runs ssh. `options` are `-o` values; the first value given for a key wins. */
export interface SshSettings {
  key: string;
  options: readonly string[];
  /** How long one `ssh -f` may take to authenticate and set up its forward. */
  startTimeoutMs?: number | undefined;
}

export function tunnelArgv(tunnel: Tunnel, ssh: SshSettings): string[] {
  return [
    'ssh',
    ...ssh.options.flatMap((option) => ['-o', option]),
    '-i',
    ssh.key,
    ...TUNNEL_MARKERS[tunnel.kind],
    tunnel.spec,
    // Ends ssh's options: the destination can never be read as one.
    '--',
    tunnel.host,
  ];
}

/** `HOST` -> `USER@HOST` when a user is configured and the line names none itself. */
export function destination(host: string, user: string | undefined): string {
  if (!user || host.includes('@')) return host;
  return `${user}@${host}`;
}

/**
 * What the forwarder adds to the original's options so that a tunnel is either working or
 * gone: no prompts, fail when the forward cannot be set up, notice a dead connection. A
 * keepalive after each second without traffic from the gateway ends a tunnel whose gateway
 * stopped answering within about 4 s, so that it reconnects to the node that took its IP over.
 */
export function defaultSshOptions(): string[] {
  return ['BatchMode=yes', 'ExitOnForwardFailure=yes', 'ServerAliveInterval=1', 'ServerAliveCountMax=3', 'ConnectTimeout=10'];
}
