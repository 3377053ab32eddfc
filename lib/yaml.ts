import { dump, load, visit, SCALAR_STYLE, YAMLException } from 'js-yaml';
import { ConfigError } from './errors.js';

/** The one module that reads and writes YAML. */

/** Aliases (`*name`) allowed in one document; our own files have none. */
export const MAX_YAML_ALIASES = 100;
/** Nesting depth allowed (js-yaml's default); ExternalServices and rules need 6. */
const MAX_YAML_DEPTH = 100;
/**
 * Values a document may expand to beyond one per byte of its text. Aliases are shared in memory,
 * but whatever walks the result (validation, messages) visits each use: nine aliases of nine
 * aliases of nine values are 9^9 values in a few hundred bytes.
 */
const EXPANSION_ALLOWANCE = 10_000;

/**
 * Parses one YAML document; a syntax error, too many aliases or values, or too deep a nesting
 * becomes a ConfigError naming the file (and the line where there is one).
 */
export function parseYaml(text: string, file: string): unknown {
  let data: unknown;
  try {
    data = load(text, { filename: file, maxAliases: MAX_YAML_ALIASES, maxDepth: MAX_YAML_DEPTH });
  } catch (error) {
    if (error instanceof YAMLException) {
      const reason = error.reason ?? 'invalid YAML';
      const mark = error.mark as { line?: number; column?: number } | undefined;
      const where = mark?.line !== undefined ? ` at line ${mark.line + 1}, column ${(mark.column ?? 0) + 1}` : '';
      throw new ConfigError(file, undefined, `invalid YAML: ${reason}${where}`);
    }
    if (error instanceof RangeError) throw new ConfigError(file, undefined, `invalid YAML: ${error.message}`);
    throw error;
  }
  const limit = text.length + EXPANSION_ALLOWANCE;
  if (!expandsWithin(data, limit)) {
    throw new ConfigError(file, undefined, `invalid YAML: its aliases expand it to more than ${limit} values`);
  }
  return data;
}

/** Whether walking `data` (each alias use again) visits at most `limit` values. */
function expandsWithin(data: unknown, limit: number): boolean {
  const pending: unknown[] = [data];
  let visited = 0;
  while (pending.length > 0) {
    const value = pending.pop();
    if (++visited > limit) return false;
    if (Array.isArray(value)) for (const item of value) pending.push(item);
    else if (isPlainObject(value)) for (const item of Object.values(value)) pending.push(item);
  }
  return true;
}

/**
 * Dumps nested mappings of strings in the exact layout of genrule.py's
 * `yaml.dump(rules, indent=2, default_flow_style=False, default_style='|')`: keys sorted and
 * double-quoted, non-empty strings as `|` literal blocks, empty strings as `""`, empty
 * mappings as `{}`.
 */
export function dumpLiteralYaml(value: unknown): string {
  return plainLiteralYaml(value) ?? dumpLiteralYamlSlowly(value);
}

/** A key that is the same text in a JSON string and a YAML double-quoted scalar: printable ASCII, no `"` or `\\`. */
const PLAIN_KEY = /^[ !#-[\]-~]*$/;
/**
 * A value whose literal block is its lines as they are (`|`, no indentation or chomping
 * indicator): lines of printable ASCII, none empty, none starting or ending with a space, each
 * ending in "\n".
 */
const PLAIN_BLOCK = /^(?:[!-~](?:[ -~]*[!-~])?\n)+$/;

/**
 * dumpLiteralYaml's output written directly, for the documents the controller writes on every
 * cycle (thousands of rule lines, where js-yaml's checks of each string took most of the time);
 * undefined for anything else (other keys, values or types), which js-yaml then writes. The
 * two give the same text (a property test compares them).
 */
function plainLiteralYaml(value: unknown): string | undefined {
  if (!isPlainObject(value)) return undefined;
  const out: string[] = [];
  const write = (object: Record<string, unknown>, indent: string): boolean => {
    for (const key of Object.keys(object).sort()) {
      if (!PLAIN_KEY.test(key)) return false;
      const entry = object[key];
      if (typeof entry === 'string') {
        if (entry === '') out.push(`${indent}"${key}": ""\n`);
        else if (PLAIN_BLOCK.test(entry)) out.push(`${indent}"${key}": |\n${indent}  ${entry.slice(0, -1).replaceAll('\n', `\n${indent}  `)}\n`);
        else return false;
      } else if (isPlainObject(entry)) {
        if (Object.keys(entry).length === 0) out.push(`${indent}"${key}": {}\n`);
        else {
          out.push(`${indent}"${key}":\n`);
          if (!write(entry, `${indent}  `)) return false;
        }
      } else return false;
    }
    return true;
  };
  if (Object.keys(value).length === 0) return '{}\n';
  return write(value, '') ? out.join('') : undefined;
}

/** dumpLiteralYaml through js-yaml: any value. */
export function dumpLiteralYamlSlowly(value: unknown): string {
  return dump(value, {
    indent: 2,
    sortKeys: true,
    lineWidth: -1,
    transform: (documents) =>
      visit(documents, (node) => {
        if (node.kind !== 'mapping') return;
        for (const item of node.items) {
          if (item.key.kind === 'scalar') item.key.style = SCALAR_STYLE.DOUBLE_QUOTED;
          if (item.value.kind === 'scalar') {
            item.value.style = item.value.value === '' ? SCALAR_STYLE.DOUBLE_QUOTED : SCALAR_STYLE.LITERAL_BLOCK;
          }
        }
      }),
  });
}

/** JSON-compatible dump for human-facing output (status, snapshots). */
export function dumpYaml(value: unknown): string {
  return dump(value, { indent: 2, lineWidth: -1, noRefs: true });
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
