import { describe, expect, it } from 'vitest';
import { cpuHasAes, parseCipherList, preferredCiphers } from '../../../lib/ciphers.js';

describe('cpuHasAes', () => {
  it.each([
    ['an x86 CPU with the aes flag', 'processor\t: 0\nflags\t\t: fpu sse2 pclmulqdq aes avx\n', true],
    ['an x86 CPU whose only AES-like flag is vaes', 'processor\t: 0\nflags\t\t: fpu sse2 vaes avx\n', false],
    ['an ARM CPU with the aes feature', 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1\n', true],
    ['an ARM CPU without it', 'processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n', false],
    ['aes only in another field', 'model name\t: aes accelerator\nflags\t\t: fpu\n', false],
    ['no cpuinfo at all', '', false],
  ])('%s: %s', (_title, cpuinfo, expected) => {
    expect(cpuHasAes(cpuinfo)).toBe(expected);
  });
});

describe('preferredCiphers', () => {
  it('puts AES-GCM first where the CPU has AES instructions and chacha20-poly1305 first elsewhere', () => {
    expect(preferredCiphers(true)).toEqual(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com']);
    expect(preferredCiphers(false)).toEqual(['chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']);
  });
});

describe('parseCipherList', () => {
  it('keeps the order given and trims the names', () => {
    expect(parseCipherList(' chacha20-poly1305@openssh.com ,aes256-gcm@openssh.com', 'SSH_CIPHERS')).toEqual(['chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com']);
  });

  it.each(['', 'aes128-gcm', '+aes128-ctr', 'aes128-ctr,,aes256-ctr'])('rejects %j naming the setting', (value) => {
    expect(() => parseCipherList(value, 'SSH_CIPHERS')).toThrow(/SSH_CIPHERS: .* is not an OpenSSH cipher/);
  });
});
