import { dump, load, visit, SCALAR_STYLE, YAMLException } from 'js-yaml';
import { ConfigError } from './errors.js';

/** The one module that reads and writes YAML. */

/** Parses one YAML document; a syntax error becomes a ConfigError naming the file and line. */
export function parseYaml(text: string, file: string): unknown {
  try {
    return load(text, { filename: file });
  } catch (error) {
    if (error instanceof YAMLException) {
      const reason = error.reason ?? 'invalid YAML';
      const mark = error.mark as { line?: number; column?: number } | undefined;
      const where = mark?.line !== undefined ? ` at line ${mark.line + 1}, column ${(mark.column ?? 0) + 1}` : '';
      throw new ConfigError(file, undefined, `invalid YAML: ${reason}${where}`);
    }
    throw error;
  }
}

/**
 * Dumps nested mappings of strings in the exact layout of genrule.py's
 * `yaml.dump(rules, indent=2, default_flow_style=False, default_style='|')`: keys sorted and
 * double-quoted, non-empty strings as `|` literal blocks, empty strings as `""`, empty
 * mappings as `{}`.
 */
export function dumpLiteralYaml(value: unknown): string {
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
