/**
 * Parsers of `ip -json` output (network namespaces, links with their IPv4 addresses, default
 * routes; output that is not a JSON array is an error), and the check of whether a process's
 * command line belongs to a given sshd.
 */

export interface AddressState {
  local: string;
  prefixlen: number;
}

export interface LinkState {
  name: string;
  /** Administratively up (the UP flag). */
  up: boolean;
  kind?: string | undefined;
  mode?: string | undefined;
  addresses: AddressState[];
}

function parseArray(text: string, what: string): unknown[] {
  if (text.trim() === '') return [];
  const data: unknown = JSON.parse(text);
  if (!Array.isArray(data)) throw new Error(`${what}: expected a JSON array`);
  return data;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

/** `ip -json netns list` */
export function parseNetnsList(text: string): string[] {
  return parseArray(text, 'ip netns list')
    .map((entry) => record(entry).name)
    .filter((name): name is string => typeof name === 'string');
}

/** `ip -json -details link show` or `ip -json -details address show` */
export function parseLinks(text: string): LinkState[] {
  return parseArray(text, 'ip link show').map((entry) => {
    const link = record(entry);
    const flags = Array.isArray(link.flags) ? link.flags : [];
    const info = record(link.linkinfo);
    const data = record(info.info_data);
    const addrInfo = Array.isArray(link.addr_info) ? link.addr_info : [];
    return {
      name: String(link.ifname ?? ''),
      up: flags.includes('UP'),
      kind: typeof info.info_kind === 'string' ? info.info_kind : undefined,
      mode: typeof data.mode === 'string' ? data.mode : undefined,
      addresses: addrInfo
        .map(record)
        .filter((address) => address.family === 'inet' && typeof address.local === 'string')
        .map((address) => ({ local: address.local as string, prefixlen: Number(address.prefixlen) })),
    };
  });
}

/**
 * Whether /proc/<pid>/cmdline belongs to a daemon (sshd, keepalived) started with `configFile`.
 * sshd rewrites its title ("sshd: /usr/sbin/sshd -f FILE [listener] ..."), so the path is looked
 * for as a word.
 */
export function startedWithConfig(cmdline: string, configFile: string): boolean {
  return cmdline.replaceAll('\0', ' ').split(/\s+/).includes(configFile);
}
