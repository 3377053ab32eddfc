import { PRIVSEP_DIR } from './observe.js';
import type { GatewaySettings } from './settings.js';
import type { Desired } from './plan.js';
import type { RulesState } from './rules-file.js';

export function buildDesired(options: GatewaySettings, ips: readonly string[], rules: RulesState): Desired {
  return {
    ips,
    placement: options.placement,
    network: options.network,
    sshdPath: options.sshdPath,
    access: { sshUser: options.sshUser, authorizedKeysFile: options.authorizedKeysFile, ciphers: options.ciphers },
    rules,
    privsepDir: PRIVSEP_DIR,
    quickack: options.quickack,
    vrrp: options.vrrp,
  };
}
