import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputFileError, readInputFile } from '../../../lib/input-file.js';
import { tempDir } from '../../helpers/cli.js';

let work: ReturnType<typeof tempDir>;
beforeEach(() => {
  work = tempDir('k8x-input-file-');
});
afterEach(() => work.remove());

function failure(file: string, maxBytes = 1024): InputFileError {
  try {
    readInputFile(file, maxBytes);
  } catch (error) {
    if (error instanceof InputFileError) return error;
    throw error;
  }
  throw new Error(`${file} was read`);
}

describe('readInputFile', () => {
  it('reads a regular file and a symlink to one', () => {
    const file = path.join(work.dir, 'a.yaml');
    fs.writeFileSync(file, 'kind: ExternalService\n');
    fs.symlinkSync(file, path.join(work.dir, 'link.yaml'));
    expect(readInputFile(file, 1024)).toBe('kind: ExternalService\n');
    expect(readInputFile(path.join(work.dir, 'link.yaml'), 1024)).toBe('kind: ExternalService\n');
  });

  it('rejects a FIFO at once instead of waiting for a writer', () => {
    const fifo = path.join(work.dir, 'rules.yaml');
    execFileSync('mkfifo', [fifo]);
    const error = failure(fifo);
    expect(error.message).toBe(`${fifo}: is a FIFO, not a regular file`);
    expect(error.code).toBe('EINVAL');
  });

  it('rejects a device and a directory without reading them', () => {
    expect(failure('/dev/zero').message).toBe('/dev/zero: is a character device, not a regular file');
    expect(failure(work.dir).message).toBe(`${work.dir}: is a directory, not a regular file`);
  });

  it('rejects a file over the limit without reading it, and accepts one at the limit', () => {
    const file = path.join(work.dir, 'big');
    fs.writeFileSync(file, 'x'.repeat(1025));
    expect(failure(file).message).toBe(`${file}: is 1025 bytes, more than the limit of 1 KiB`);
    fs.truncateSync(file, 1024);
    expect(readInputFile(file, 1024)).toHaveLength(1024);
  });

  it('names a missing file with ENOENT and an unreadable one with its errno code', () => {
    const missing = failure(path.join(work.dir, 'nope'));
    expect([missing.message, missing.code]).toEqual([`${path.join(work.dir, 'nope')}: does not exist`, 'ENOENT']);
    const dangling = path.join(work.dir, 'dangling.yaml');
    fs.symlinkSync(path.join(work.dir, 'gone'), dangling);
    expect(failure(dangling).code).toBe('ENOENT');
  });
});
