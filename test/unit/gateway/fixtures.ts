import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseIptablesSave } from '../../../lib/iptables.js';
import { parseRules } from '../../../lib/rules.js';
import { parseLinks } from '../../../gateway/ip-json.js';
import { parseRoutesJson } from '../../../lib/routes.js';
import { namesFor } from '../../../gateway/names.js';
import type { GatewayState, IpState } from '../../../gateway/observe.js';
import type { Desired } from '../../../gateway/plan.js';
import { permitsFor, renderSshdConfig } from '../../../gateway/sshd-config.js';
import type { VrrpSettings } from '../../../gateway/vrrp.js';

/** A gateway whose IP 192.168.122.200 is fully in place, as observed from captured output. */

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/gateway');
export const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

export const IP = '192.168.122.200';
export const placement = { netnsPrefix: 'ns', runDir: '/run' };
export const names = namesFor(IP, placement);
export const HOST_KEYS = ['/etc/ssh/ssh_host_ed25519_key'];
/** Failover as the gateway would run it: managed keepalived, priority 150, nopreempt, adverts every 0.5 s. */
export const VRRP_SETTINGS: VrrpSettings = {
  keepalived: 'managed',
  priority: 150,
  preempt: false,
  advertIntervalS: 0.5,
  notifyCommand: ['/usr/bin/node', '/opt/k8s-ext-connector/bin/gateway', 'vrrp-notify', '/run/vrrp-state'],
};
export const rules = parseRules(fixture('rules.yaml'), 'rules.yaml');

export function desired(overrides: Partial<Desired> = {}): Desired {
  return {
    ips: [IP],
    placement,
    network: { nic: 'eth0', prefixLength: 24, defaultGateway: '192.168.122.1' },
    sshdPath: '/usr/sbin/sshd',
    access: {},
    rules: { kind: 'ok', rules },
    privsepDir: '/run/sshd',
    quickack: true,
    ...overrides,
  };
}

export function inPlaceIp(): IpState {
  return {
    netnsExists: true,
    // The captured namespace also holds the veth pair the macvlan hangs off; only lo and the
    // macvlan matter to the plan.
    links: parseLinks(fixture('ip-address-show.json')),
    // Every unicast and local route with quickack, as the gateway leaves them.
    routes: parseRoutesJson(fixture('ip-route-show-table-all.json')),
    pids: [4242],
    nat: parseIptablesSave(fixture('iptables-save-nat.txt')),
    sshd: { pidFileExists: true, pid: 4242, running: true },
    config: renderSshdConfig(names, { hostKeys: HOST_KEYS }, permitsFor(rules, IP)),
  };
}

export function inPlace(): GatewayState {
  return {
    hostLinks: [{ name: 'eth0', up: true, addresses: [] }],
    managed: [{ ip: IP, netns: names.netns }],
    ips: { [IP]: inPlaceIp() },
    hostKeys: HOST_KEYS,
    generatedHostKeyExists: false,
    privsepDirExists: true,
  };
}
