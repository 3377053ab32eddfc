import { describe, expect, it } from 'vitest';
import { colorWanted, createLogger, formatFields } from '../../../lib/log.js';

function sink(isTTY: boolean): { write: (text: string) => void; isTTY: boolean; lines: string[] } {
  const lines: string[] = [];
  return { isTTY, lines, write: (text: string) => void lines.push(text) };
}
const now = () => new Date('2026-11-27T10:00:00.000Z');

describe('createLogger', () => {
  it('writes timestamp, level, component, message and fields on one line', () => {
    const out = sink(false);
    createLogger('gateway', { sink: out, now, level: 'info' }).info('rules applied', { ip: '192.168.122.200', rules: 2 });
    expect(out.lines).toEqual(['2026-11-27T10:00:00.000Z INFO  gateway rules applied ip=192.168.122.200 rules=2\n']);
  });

  it('leaves out debug lines unless the level is debug', () => {
    const out = sink(false);
    createLogger('x', { sink: out, now, level: 'info' }).debug('hidden');
    createLogger('x', { sink: out, now, level: 'debug' }).debug('shown');
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).toContain('shown');
  });

  it('colours only when asked to', () => {
    const plain = sink(false);
    const coloured = sink(true);
    createLogger('x', { sink: plain, now, color: false }).error('bad');
    createLogger('x', { sink: coloured, now, color: true }).error('bad');
    expect(plain.lines[0]).not.toContain('\u001b[');
    expect(coloured.lines[0]).toContain('\u001b[');
  });

  it('names the child component after its parent', () => {
    const out = sink(false);
    createLogger('controller', { sink: out, now }).child('deliver').warn('scp failed');
    expect(out.lines[0]).toContain(' controller/deliver scp failed');
  });
});

describe('colorWanted', () => {
  it('is true on a terminal and false under NO_COLOR or off a terminal', () => {
    expect(colorWanted({ write: () => 0, isTTY: true }, {})).toBe(true);
    expect(colorWanted({ write: () => 0, isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorWanted({ write: () => 0, isTTY: false }, {})).toBe(false);
    expect(colorWanted({ write: () => 0, isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });
});

describe('formatFields', () => {
  it('quotes values with spaces and skips undefined ones', () => {
    expect(formatFields({ a: 'x y', b: undefined, c: true })).toBe('a="x y" c=true');
  });
});
