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

export function readRulesFile(file: string): RulesState {
  try {
    return { kind: 'ok', rules: parseRules(readInputFile(file, INPUT_LIMITS.rulesFile), file) };
  } catch (error) {
    if (error instanceof InputFileError && error.code === 'ENOENT') return { kind: 'absent' };
    if (error instanceof ConfigError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
}
