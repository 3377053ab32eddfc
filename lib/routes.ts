/**
 * Delayed ACKs on the tunnels' legs. ssh keeps Nagle's algorithm on for a session without a
 * terminal, and so do most servers: when one side writes twice in a row (an HTTP reply's headers,
 * then its body), the second write waits for the ACK of the first, which the receiving side
 * delays by up to 40 ms. A route's `quickack 1` makes every socket that uses the route ACK at
 * once. Only namespaces that belong to this product get it: the gateway's per-IP namespaces and
 * the forwarder pod's own; never the host's.
 *
 * Routes are read from `ip -4 -json -d route show table all` and changed in place with
 * `ip route change`, which replaces the whole route: every attribute is written back as it was,
 * and a route that holds something this module cannot write back exactly is left alone.
 */

export interface Route {
  table: string;
  type: string;
  dst: string;
  tos?: string | undefined;
  gateway?: string | undefined;
  dev?: string | undefined;
  protocol?: string | undefined;
  scope?: string | undefined;
  prefsrc?: string | undefined;
  metric?: number | undefined;
  onlink: boolean;
  /** Route metrics such as mtu or quickack, by the names `ip route` reads them. */
  metrics: Record<string, number>;
  /** Why `ip route change` could not write this route back exactly; then it is left alone. */
  notReproducible?: string | undefined;
}

/** The read-only `ip` arguments that list every IPv4 route of a namespace. */
export const ROUTE_SHOW_ARGS = ['-4', '-json', '-d', 'route', 'show', 'table', 'all'] as const;

/** Route types whose sockets carry TCP: the routes to other hosts and to the namespace's own addresses. */
const TUNED_TYPES = new Set(['unicast', 'local']);

/** Metrics that `ip route` prints in JSON exactly as it reads them. */
const NUMERIC_METRICS = new Set(['mtu', 'advmss', 'window', 'cwnd', 'initcwnd', 'initrwnd', 'ssthresh', 'reordering', 'hoplimit', 'fastopen_no_cookie', 'quickack']);

const KNOWN_FIELDS = new Set(['type', 'dst', 'tos', 'gateway', 'dev', 'table', 'protocol', 'scope', 'prefsrc', 'metric', 'flags', 'metrics']);

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

const text = (value: unknown): string | undefined => (typeof value === 'string' || typeof value === 'number' ? String(value) : undefined);

/** `ip -4 -json -d route show table all` -> routes. */
export function parseRoutesJson(json: string): Route[] {
  if (json.trim() === '') return [];
  const data: unknown = JSON.parse(json);
  if (!Array.isArray(data)) throw new Error('ip route show: expected a JSON array');
  return data.map((entry) => {
    const raw = record(entry);
    const problems: string[] = Object.keys(raw)
      .filter((key) => !KNOWN_FIELDS.has(key))
      .map((key) => `"${key}"`);
    const metrics: Record<string, number> = {};
    for (const group of Array.isArray(raw.metrics) ? raw.metrics : []) {
      for (const [key, value] of Object.entries(record(group))) {
        if (NUMERIC_METRICS.has(key) && typeof value === 'number') metrics[key] = value;
        else problems.push(`metric "${key}"`);
      }
    }
    const flags = Array.isArray(raw.flags) ? raw.flags.map(String) : [];
    return {
      table: text(raw.table) ?? 'main',
      type: text(raw.type) ?? 'unicast',
      dst: text(raw.dst) ?? '',
      tos: text(raw.tos),
      gateway: text(raw.gateway),
      dev: text(raw.dev),
      protocol: text(raw.protocol),
      scope: text(raw.scope),
      prefsrc: text(raw.prefsrc),
      metric: typeof raw.metric === 'number' ? raw.metric : undefined,
      onlink: flags.includes('onlink'),
      metrics,
      notReproducible: problems.length > 0 ? `it has ${problems.join(', ')}` : undefined,
    };
  });
}

/** The route as `ip route` words (without the table), e.g. `local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1`. */
export function routeWords(route: Route): string[] {
  return [
    route.type,
    route.dst,
    ...(route.tos !== undefined ? ['tos', route.tos] : []),
    ...(route.gateway !== undefined ? ['via', route.gateway] : []),
    ...(route.dev !== undefined ? ['dev', route.dev] : []),
    ...(route.protocol !== undefined ? ['proto', route.protocol] : []),
    ...(route.scope !== undefined ? ['scope', route.scope] : []),
    ...(route.prefsrc !== undefined ? ['src', route.prefsrc] : []),
    ...(route.metric !== undefined ? ['metric', String(route.metric)] : []),
    ...(route.onlink ? ['onlink'] : []),
  ];
}

/** A short description for logs and status: `local 127.0.0.1 dev lo (table local)`. */
export function describeRoute(route: Route): string {
  const words = [route.type === 'unicast' ? undefined : route.type, route.dst, route.gateway && `via ${route.gateway}`, route.dev && `dev ${route.dev}`];
  return `${words.filter(Boolean).join(' ')} (table ${route.table})`;
}

export function hasQuickack(route: Route): boolean {
  return (route.metrics.quickack ?? 0) !== 0;
}

/** The `route change` arguments (after `ip` or `ip -n NS`) that give `route` quickack and keep everything else. */
export function quickackChangeArgs(route: Route): string[] {
  const metrics = Object.entries({ ...route.metrics, quickack: 1 }).flatMap(([key, value]) => [key, String(value)]);
  return ['route', 'change', 'table', route.table, ...routeWords(route), ...metrics];
}

export interface QuickackPlan {
  /** Routes that lack quickack, each with its `route change` arguments. */
  changes: { route: Route; args: string[] }[];
  /** Routes that lack quickack but cannot be written back exactly, with the reason. */
  leftAlone: { route: Route; reason: string }[];
}

/** What tells routes apart for `ip route change`: table, type, destination, tos and priority. */
export function routeKey(route: Route): string {
  return [route.table, route.type, route.dst, route.tos ?? '', route.metric ?? ''].join(' ');
}

/**
 * Which routes of a namespace get quickack: every unicast and local route that lacks it. Of
 * routes with the same key (the kernel keeps a second local route when a device comes back up)
 * only the first is used for lookups, and only it can be changed: the others are not looked at.
 */
export function planQuickack(routes: readonly Route[]): QuickackPlan {
  const plan: QuickackPlan = { changes: [], leftAlone: [] };
  const seen = new Set<string>();
  for (const route of routes) {
    const key = routeKey(route);
    if (seen.has(key)) continue;
    seen.add(key);
    if (!TUNED_TYPES.has(route.type) || hasQuickack(route)) continue;
    if (route.notReproducible !== undefined) plan.leftAlone.push({ route, reason: route.notReproducible });
    else plan.changes.push({ route, args: quickackChangeArgs(route) });
  }
  return plan;
}


/** `ip -batch` input that gives each of the routes quickack: one `route change` line per route. */
export function quickackBatch(changes: readonly { args: readonly string[] }[]): string {
  return changes.map((change) => `${change.args.join(' ')}\n`).join('');
}
