import { describe, expect, it } from 'vitest';
import { firstLine } from '../../../forwarder/configmap-watch.js';

describe('firstLine (kubectl error output)', () => {
  const refused = 'couldn\'t get current server API group list: Get "https://10.96.0.1:443/api?timeout=32s": dial tcp 10.96.0.1:443: connect: connection refused';

  it("drops klog's prefix, so that the same error on two retries reads the same", () => {
    const first = firstLine(`E1203 06:41:02.123456    1234 memcache.go:265] ${refused}\nThe connection to the server 10.96.0.1:443 was refused\n`);
    const second = firstLine(`E1203 06:41:04.987001   98765 memcache.go:265] ${refused}\n`);
    expect(first).toBe(refused);
    expect(second).toBe(first);
  });

  it.each(['I', 'W', 'E', 'F'])('drops the prefix of severity %s', (severity) => {
    expect(firstLine(`${severity}0101 00:00:00.000001 1 reflector.go:1] x failed`)).toBe('x failed');
  });

  it('keeps lines without the prefix as they are, skipping empty lines and kubectl warnings', () => {
    expect(firstLine('\nWarning: v1 ComponentStatus is deprecated\n  Error from server (NotFound): configmaps "x" not found  \n')).toBe('Error from server (NotFound): configmaps "x" not found');
    expect(firstLine('E1203 is not a prefix] here')).toBe('E1203 is not a prefix] here');
    expect(firstLine('')).toBe('');
  });
});
