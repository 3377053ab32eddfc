import { ConfigError, quote } from '../lib/errors.js';
import { INPUT_LIMITS, readInputFile } from '../lib/input-file.js';
import { unicastIPv4Problem } from '../lib/ipv4.js';

/**
 * ips.conf: one IPv4 address per line; blank lines and `#` comments (whole-line or trailing)
 * are allowed. Anything else is an error naming the file and the line number.
 */
export function parseIpsConf(text: string, file: string): string[] {
  const ips: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const problem = unicastIPv4Problem(line);
    if (problem !== undefined) throw new ConfigError(file, `line ${index + 1}`, `${quote(line)} ${problem}`);
    if (!ips.includes(line)) ips.push(line);
  });
  return ips;
}

export function readIpsConf(file: string): string[] {
  return parseIpsConf(readInputFile(file, INPUT_LIMITS.ipsConf), file);
}
