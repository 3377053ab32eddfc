import { ConfigError } from '../lib/errors.js';
import { INPUT_LIMITS, readInputFile } from '../lib/input-file.js';
import { isIPv4 } from '../lib/ipv4.js';

/**
 * ips.conf: one IPv4 address per line; blank lines and `#` comments (whole-line or trailing)
 * are allowed. Anything else is an error naming the file and the line number.
 */
export function parseIpsConf(text: string, file: string): string[] {
  const ips: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    if (!isIPv4(line)) throw new ConfigError(file, `line ${index + 1}`, `"${line}" is not an IPv4 address`);
    if (!ips.includes(line)) ips.push(line);
  });
  return ips;
}

export function readIpsConf(file: string): string[] {
  return parseIpsConf(readInputFile(file, INPUT_LIMITS.ipsConf), file);
}
