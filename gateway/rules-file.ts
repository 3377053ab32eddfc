import fs from 'node:fs';
import { ConfigError, errorMessage } from '../lib/errors.js';
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
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'invalid', reason: `${file}: cannot read: ${code ?? errorMessage(error)}` };
  }
  try {
    return { kind: 'ok', rules: parseRules(text, file) };
  } catch (error) {
    if (error instanceof ConfigError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
}
