import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRoute, parseRoutesJson, planQuickack, quickackBatch, type Route } from '../../../lib/routes.js';

/** Captured with `ip -4 -json -d route show table all` in a pod-like namespace, before and after quickack. */
const fixture = (name: string): string => fs.readFileSync(path.join(import.meta.dirname, '../../fixtures/forwarder', name), 'utf8');
const POD_ROUTES = parseRoutesJson(fixture('ip-route-show-table-all.json'));
const TUNED_ROUTES = parseRoutesJson(fixture('ip-route-show-table-all-quickack.json'));

const changes = (routes: readonly Route[]): string[] => planQuickack(routes).changes.map((change) => change.args.join(' '));

describe('parseRoutesJson', () => {
  it('reads every route with its table, type and attributes', () => {
    expect(POD_ROUTES).toHaveLength(7);
    expect(POD_ROUTES[0]).toEqual({
      table: 'main',
      type: 'unicast',
      dst: 'default',
      tos: undefined,
      gateway: '10.244.0.1',
      dev: 'eth0',
      protocol: 'boot',
      scope: 'global',
      prefsrc: undefined,
      metric: undefined,
      onlink: false,
      metrics: {},
      notReproducible: undefined,
    });
    expect(TUNED_ROUTES.find((route) => route.dst === '10.8.0.0/24')).toMatchObject({ metric: 50, onlink: true, metrics: { mtu: 1400, quickack: 1 } });
  });

  it('reads no routes from empty output', () => {
    expect(parseRoutesJson('')).toEqual([]);
  });

  it('marks routes that ip route change could not write back exactly', () => {
    expect(TUNED_ROUTES.find((route) => route.dst === '10.7.0.0/24')?.notReproducible).toBe('it has metric "rtt"');
    const [multipath] = parseRoutesJson('[{"type":"unicast","dst":"10.6.0.0/24","table":"main","nexthops":[{"gateway":"10.0.0.1","dev":"eth0"}]}]');
    expect(multipath?.notReproducible).toBe('it has "nexthops"');
  });
});

describe('planQuickack', () => {
  it("adds quickack to every unicast and local route of a pod's namespace, the table local routes included, and to no broadcast route", () => {
    expect(changes(POD_ROUTES)).toEqual([
      'route change table main unicast default via 10.244.0.1 dev eth0 proto boot scope global quickack 1',
      'route change table main unicast 10.244.0.0/24 dev eth0 proto kernel scope link src 10.244.0.50 quickack 1',
      'route change table local local 10.244.0.50 dev eth0 proto kernel scope host src 10.244.0.50 quickack 1',
      'route change table local local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
      'route change table local local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 quickack 1',
    ]);
  });

  it('plans nothing once every route has quickack, and leaves alone the route it cannot write back', () => {
    const plan = planQuickack(TUNED_ROUTES);
    expect(plan.changes).toEqual([]);
    expect(plan.leftAlone.map((entry) => [describeRoute(entry.route), entry.reason])).toEqual([['10.7.0.0/24 via 10.244.0.7 dev eth0 (table main)', 'it has metric "rtt"']]);
  });

  it('writes back the metric, priority, onlink flag and other metrics of the route it changes', () => {
    const route = { ...TUNED_ROUTES.find((entry) => entry.dst === '10.8.0.0/24')!, metrics: { mtu: 1400 } };
    expect(changes([route])).toEqual(['route change table main unicast 10.8.0.0/24 via 10.244.0.7 dev eth0 proto static scope global metric 50 onlink mtu 1400 quickack 1']);
  });

  it('looks only at the first of two routes with the same key: the one lookups use and ip route change reaches', () => {
    const local = POD_ROUTES.find((route) => route.dst === '10.244.0.50')!;
    expect(changes([{ ...local, metrics: { quickack: 1 } }, local])).toEqual([]);
    expect(changes([local, { ...local, metrics: { quickack: 1 } }])).toHaveLength(1);
  });

  it('writes one ip -batch line per route', () => {
    expect(quickackBatch(planQuickack(POD_ROUTES.slice(0, 2)).changes)).toBe(
      'route change table main unicast default via 10.244.0.1 dev eth0 proto boot scope global quickack 1\n' +
        'route change table main unicast 10.244.0.0/24 dev eth0 proto kernel scope link src 10.244.0.50 quickack 1\n',
    );
  });

  it('changes a route whose quickack is 0', () => {
    const route = { ...POD_ROUTES[0]!, metrics: { quickack: 0 } };
    expect(changes([route])).toEqual(['route change table main unicast default via 10.244.0.1 dev eth0 proto boot scope global quickack 1']);
  });
});
