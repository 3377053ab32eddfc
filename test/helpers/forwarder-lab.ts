export { writeConfigMapVolume as writeConfigMap } from '../../lab/configmap.js';

/** A data.yaml with one forwarder entry (blocks of lines as genrule writes them). */
export function forwarderData(name: string, entry: { 'ssh-tunnel'?: string[]; 'remote-ssh-tunnel'?: string[]; 'iptables-rule'?: string[] }): string {
  const block = (lines: string[] | undefined): string =>
    lines && lines.length > 0 ? `|\n${lines.map((line) => `      ${line}\n`).join('')}` : '""\n';
  return [
    '"forwarder":',
    `  "${name}":`,
    `    "iptables-rule": ${block(entry['iptables-rule'])}`.trimEnd(),
    `    "remote-ssh-tunnel": ${block(entry['remote-ssh-tunnel'])}`.trimEnd(),
    `    "ssh-tunnel": ${block(entry['ssh-tunnel'])}`.trimEnd(),
    '"gateway": {}',
    '',
  ].join('\n');
}
