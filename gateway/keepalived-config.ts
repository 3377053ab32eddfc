import { run } from '../lib/exec.js';
import { parseLinks } from './ip-json.js';
import { namesFor } from './names.js';
import type { GatewaySettings } from './settings.js';
import { keepalivedConfigFor } from './plan.js';
import { readGatewayIps } from './reconcile.js';

/** `gateway keepalived-config IPS_CONF`: each IP's keepalived config, as the gateway writes it with failover. */
export async function keepalivedConfigs(options: GatewaySettings): Promise<string> {
  if (!options.vrrp) throw new Error('keepalived-config needs the failover settings');
  const settings = options.vrrp;
  const host = await run('ip', ['-json', 'address', 'show', 'dev', options.network.nic]);
  const hostLinks = parseLinks(host.stdout);
  return readGatewayIps(options)
    .map((ip) => {
      const names = namesFor(ip, options.placement);
      return `# ${names.keepalivedConfig}\n${keepalivedConfigFor(names, options.network, hostLinks, settings, options.quickack)}`;
    })
    .join('\n');
}
