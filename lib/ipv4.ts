/** Dotted-quad IPv4 addresses: validation (unicast or not) and the original's hex naming. */

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function isIPv4(value: unknown): value is string {
  return typeof value === 'string' && IPV4.test(value);
}

/**
 * Why an IPv4 address cannot be a host's own address or a peer to connect to, or undefined when
 * it can (a unicast address). Used wherever an address is given: ips.conf, ExternalServices, the
 * rules document, DEFAULT_GATEWAY.
 */
export function nonUnicastReason(ip: string): string | undefined {
  // The first two parts, as ip.split('.').map(Number) has them, without the arrays: this runs for
  // every address of every rule of the rules file.
  const firstDot = ip.indexOf('.');
  const secondDot = firstDot === -1 ? -1 : ip.indexOf('.', firstDot + 1);
  const first = Number(firstDot === -1 ? ip : ip.slice(0, firstDot));
  const second = firstDot === -1 ? 0 : Number(secondDot === -1 ? ip.slice(firstDot + 1) : ip.slice(firstDot + 1, secondDot));
  if (first === 0) return 'is unspecified (0.0.0.0/8)';
  if (first === 127) return 'is a loopback address (127.0.0.0/8)';
  if (first === 169 && second === 254) return 'is a link-local address (169.254.0.0/16)';
  if (first >= 224 && first <= 239) return 'is a multicast address (224.0.0.0/4)';
  if (ip === '255.255.255.255') return 'is the broadcast address';
  if (first >= 240) return 'is a reserved address (240.0.0.0/4)';
  return undefined;
}

/** An IPv4 address that can be a host's own or a peer's (see nonUnicastReason). */
export function isUnicastIPv4(value: unknown): value is string {
  return isIPv4(value) && nonUnicastReason(value) === undefined;
}

/** Why a value is not a unicast IPv4 address, or undefined when it is one. */
export function unicastIPv4Problem(value: unknown): string | undefined {
  if (!isIPv4(value)) return 'is not an IPv4 address';
  return nonUnicastReason(value);
}

/** 192.168.122.200 -> c0a87ac8, as gateway.sh's `printf "%02x%02x%02x%02x"`. */
export function ipToHex(ip: string): string {
  if (!isIPv4(ip)) throw new Error(`not an IPv4 address: ${ip}`);
  return ip
    .split('.')
    .map((octet) => Number(octet).toString(16).padStart(2, '0'))
    .join('');
}

/** 1..65535, from a number or a string of digits ("8000" is 8000). */
export function parsePort(value: unknown): number | undefined {
  let port: number;
  if (typeof value === 'number') port = value;
  else if (typeof value === 'string' && /^\d{1,5}$/.test(value.trim())) port = Number(value.trim());
  else return undefined;
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? port : undefined;
}
