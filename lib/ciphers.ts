import { ConfigError } from './errors.js';

/**
 * The ssh ciphers of the tunnels. An ssh tunnel moves data only as fast as one core encrypts it,
 * so the cipher sets the throughput. OpenSSH offers chacha20-poly1305 first; on a CPU with AES
 * instructions AES-GCM is much faster (about 1.4x through a tunnel on the machines this was
 * measured on), and without them chacha20-poly1305 is the faster one. Both are authenticated
 * encryption (no separate MAC), and they are the only ciphers the gateway's sshds accept.
 */

export const AES_GCM_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] as const;
export const CHACHA20_CIPHER = 'chacha20-poly1305@openssh.com';

/** What the gateway's sshds accept unless told otherwise. */
export const GATEWAY_CIPHERS: readonly string[] = [...AES_GCM_CIPHERS, CHACHA20_CIPHER];

/** The ciphers OpenSSH knows (`ssh -Q cipher`); anything else is a typing error. */
const KNOWN_CIPHERS = new Set([
  '3des-cbc',
  'aes128-cbc',
  'aes192-cbc',
  'aes256-cbc',
  'aes128-ctr',
  'aes192-ctr',
  'aes256-ctr',
  ...AES_GCM_CIPHERS,
  CHACHA20_CIPHER,
]);

/** Whether /proc/cpuinfo text shows AES instructions (`aes` among x86 flags or ARM features). */
export function cpuHasAes(cpuinfo: string): boolean {
  return /^(flags|features)\s*:.*(\s|^)aes(\s|$)/im.test(cpuinfo);
}

/** The order the forwarder offers the ciphers in: the fastest on this CPU first. */
export function preferredCiphers(hasAes: boolean): string[] {
  return hasAes ? [...AES_GCM_CIPHERS, CHACHA20_CIPHER] : [CHACHA20_CIPHER, ...AES_GCM_CIPHERS];
}

/** A comma-separated cipher list from a setting, each name one that OpenSSH knows. */
export function parseCipherList(value: string, variable: string): string[] {
  const names = value.split(',').map((name) => name.trim());
  for (const name of names) {
    if (!KNOWN_CIPHERS.has(name)) {
      throw new ConfigError('environment', variable, `"${name}" is not an OpenSSH cipher (one of ${[...KNOWN_CIPHERS].join(', ')}, separated by commas)`);
    }
  }
  return names;
}
