import { createHash } from 'node:crypto';
import { ConfigError } from '../lib/errors.js';
import { INPUT_LIMITS, InputFileError, readInputFile } from '../lib/input-file.js';
import { parseRules, type RulesDocument } from '../lib/rules.js';

/**
 * The rules file as this cycle finds it. Only 'ok' changes any rules: a missing file means the
 * controller has not sent rules yet, and an unreadable or malformed one keeps what is applied.
 */
export type RulesState =
  | { kind: 'ok'; rules: RulesDocument }
  | { kind: 'absent' }
  | { kind: 'invalid'; reason: string };

/** The last valid rules file read: the digest of its text and the document parsed from it. */
export interface ParsedRulesFile {
  file: string;
  sha256: string;
  rules: RulesDocument;
}

/**
 * Reads and parses the rules file. With `cache`, a file whose text is the one parsed last time
 * is not parsed again: its document is reused (the rules of 100 IPs, 8.7 MB, take a third of a
 * second to parse, and the loop reads the same file every interval and after every publication).
 */
export function readRulesFile(file: string, cache?: { last?: ParsedRulesFile | undefined }): RulesState {
  try {
    const text = readInputFile(file, INPUT_LIMITS.rulesFile);
    const sha256 = cache ? createHash('sha256').update(text).digest('hex') : '';
    const last = cache?.last;
    if (last !== undefined && last.file === file && last.sha256 === sha256) return { kind: 'ok', rules: last.rules };
    const rules = parseRules(text, file);
    if (cache) cache.last = { file, sha256, rules };
    return { kind: 'ok', rules };
  } catch (error) {
    if (error instanceof InputFileError && error.code === 'ENOENT') return { kind: 'absent' };
    if (error instanceof ConfigError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
}
