import { describe, expect, it } from 'vitest';
import { applyWatchEvent, chooseRules, configMapCopy, fileFingerprint, kubectlArgs, parseWatchEvent, type ApiRules } from '../../../forwarder/rules-source.js';

const copy = { text: 'rules', resourceVersion: '5' };
const FILE = fileFingerprint({ text: 'file v1' });
const CHANGED = fileFingerprint({ text: 'file v2' });

describe('chooseRules', () => {
  it.each<[string, ApiRules | undefined, string, string | undefined, 'api' | 'file']>([
    ['no watch configured', undefined, FILE, undefined, 'file'],
    ['the watch has delivered nothing yet', { live: false }, FILE, undefined, 'file'],
    ['the watch is live', { live: true, copy }, FILE, undefined, 'api'],
    ['the watch is live, whatever the file does', { live: true, copy }, CHANGED, FILE, 'api'],
    ['the watch is lost and the file is as it was when the copy was last used', { live: false, copy }, FILE, FILE, 'api'],
    ['the watch is lost and the file changed since', { live: false, copy }, CHANGED, FILE, 'file'],
    ['the watch is lost and the copy was never used', { live: false, copy }, FILE, undefined, 'file'],
    ['the ConfigMap was deleted', { live: true }, FILE, FILE, 'file'],
  ])('%s: the %s', (_title, api, file, atLastUse, expected) => {
    expect(chooseRules(api, file, atLastUse).from).toBe(expected);
  });

  it('tells whether the copy in force comes from a live watch', () => {
    expect(chooseRules({ live: false, copy }, FILE, FILE)).toEqual({ from: 'api', copy, live: false });
  });
});

describe('fileFingerprint', () => {
  it('tells a text from an error with the same words', () => {
    expect(fileFingerprint({ text: 'x' })).not.toBe(fileFingerprint({ error: 'x' }));
    expect(fileFingerprint({ text: 'x' })).toBe(fileFingerprint({ text: 'x' }));
  });
});

describe('parseWatchEvent', () => {
  const event = (type: string, object: unknown): string => JSON.stringify({ type, object });
  const configMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', resourceVersion: '42' }, data: { 'data.yaml': 'rules\n', other: 'x' } };

  it.each(['ADDED', 'MODIFIED', 'DELETED'])('reads the rules and resourceVersion of a %s event', (type) => {
    expect(parseWatchEvent(event(type, configMap), 'data.yaml')).toEqual({ type, resourceVersion: '42', text: 'rules\n' });
  });

  it("reads a ConfigMap without the key (or without data) as ''", () => {
    expect(parseWatchEvent(event('MODIFIED', { ...configMap, data: undefined }), 'data.yaml')?.text).toBe('');
    expect(parseWatchEvent(event('MODIFIED', configMap), 'missing.yaml')?.text).toBe('');
  });

  it.each([
    ['a line that is not JSON', 'Error: something'],
    ['a bookmark', event('BOOKMARK', configMap)],
    ['an error status', event('ERROR', { kind: 'Status', message: 'too old resource version' })],
    ['another kind of object', event('ADDED', { ...configMap, kind: 'Secret' })],
    ['an object without resourceVersion', event('ADDED', { ...configMap, metadata: { name: 'cm' } })],
  ])('ignores %s', (_title, line) => {
    expect(parseWatchEvent(line, 'data.yaml')).toBeUndefined();
  });

  it('reads the object of a plain get the same way', () => {
    expect(configMapCopy(configMap, 'data.yaml')).toEqual({ resourceVersion: '42', text: 'rules\n' });
  });
});

describe('applyWatchEvent', () => {
  it('keeps the copy of an added or modified ConfigMap and drops it when it is deleted', () => {
    expect(applyWatchEvent({ type: 'MODIFIED', resourceVersion: '3', text: 'r' })).toEqual({ live: true, copy: { resourceVersion: '3', text: 'r' } });
    expect(applyWatchEvent({ type: 'DELETED', resourceVersion: '4', text: 'r' })).toEqual({ live: true });
  });
});

describe('kubectlArgs', () => {
  it("names the ConfigMap and the namespace, or leaves the namespace to kubectl's in-cluster configuration", () => {
    expect(kubectlArgs({ name: 'cm', key: 'k', namespace: 'ns' }, true)).toEqual(['get', 'configmap', 'cm', '-n', 'ns', '--watch', '--output-watch-events', '-o', 'json']);
    expect(kubectlArgs({ name: 'cm', key: 'k', namespace: undefined }, false)).toEqual(['get', 'configmap', 'cm', '-o', 'json']);
  });
});
