import { describe, expect, it } from 'vitest';
import { PortTable } from '../../../controller/ports.js';

type Step = ['mark', number] | ['allocate', string] | ['lookup', string];

describe('PortTable', () => {
  it.each<{ title: string; steps: Step[]; results: (number | undefined)[] }>([
    { title: 'hands out the lowest free port from 2049', steps: [['allocate', 'a'], ['allocate', 'b']], results: [2049, 2050] },
    { title: 'skips marked ports', steps: [['mark', 2049], ['mark', 2051], ['allocate', 'a'], ['allocate', 'b']], results: [undefined, undefined, 2050, 2052] },
    { title: 'ignores marked ports below 2049', steps: [['mark', 80], ['allocate', 'a']], results: [undefined, 2049] },
    { title: 'finds the first port allocated for a value', steps: [['allocate', 'a'], ['allocate', 'a'], ['lookup', 'a']], results: [2049, 2050, 2049] },
    { title: 'finds nothing for an unknown value', steps: [['allocate', 'a'], ['lookup', 'b']], results: [2049, undefined] },
    {
      title: 'lets a mark overwrite an allocation, so lookup finds the next one',
      steps: [['allocate', 'a'], ['allocate', 'a'], ['mark', 2049], ['lookup', 'a']],
      results: [2049, 2050, undefined, 2050],
    },
  ])('$title', ({ steps, results }) => {
    const table = new PortTable();
    const got = steps.map(([action, argument]) => {
      if (action === 'mark') return table.mark(argument as number);
      return action === 'allocate' ? table.allocate(argument as string) : table.lookup(argument as string);
    });
    expect(got).toEqual(results);
  });

  it('returns undefined once every port up to 65535 is taken', () => {
    const table = new PortTable();
    for (let port = 2049; port <= 65535; port++) table.mark(port);
    expect(table.allocate('a')).toBeUndefined();
  });
});
