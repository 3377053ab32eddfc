/** Dotted-quad IPv4 addresses: validation and the original's hex naming. */

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function isIPv4(value: unknown): value is string {
  return typeof value === 'string' && IPV4.test(value);
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
