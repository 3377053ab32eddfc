import { ConfigError } from './errors.js';
import { isPlainObject } from './yaml.js';

/**
 * The fields an ExternalService may have, to report the others: a typo such as `targetport` or
 * `bidirectonal` would otherwise be ignored without a word and change nothing.
 */

/** A mapping's known keys, each with the schema of its value; `ANY` accepts whatever is there. */
type Schema = typeof ANY | { readonly [key: string]: Schema } | readonly [Schema];
const ANY = 'any';

/** What Kubernetes may put in any object's metadata (as `kubectl get -o yaml` prints it). */
const OBJECT_METADATA = [
  'name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
  'deletionGracePeriodSeconds', 'finalizers', 'ownerReferences', 'managedFields', 'generateName', 'selfLink',
] as const;

const EXTERNAL_SERVICE_SCHEMA: Schema = {
  apiVersion: ANY,
  kind: ANY,
  metadata: Object.fromEntries(OBJECT_METADATA.map((key) => [key, ANY])),
  spec: {
    targetIP: ANY,
    sources: [{ service: { namespace: ANY, name: ANY }, sourceIP: ANY, bidirectional: ANY }],
    ports: [{ protocol: ANY, port: ANY, targetPort: ANY, name: ANY }],
  },
  status: ANY,
};

/** Every field of a parsed ExternalService that the schema does not know, as a ConfigError naming it. */
export function unknownFields(data: unknown, file: string): ConfigError[] {
  const found: ConfigError[] = [];
  const walk = (value: unknown, schema: Schema, field: string): void => {
    if (schema === ANY) return;
    if (Array.isArray(schema)) {
      if (Array.isArray(value)) value.forEach((item: unknown, index) => walk(item, schema[0] as Schema, `${field}[${index}]`));
      return;
    }
    if (!isPlainObject(value)) return;
    const known = schema as Readonly<Record<string, Schema>>;
    for (const [key, item] of Object.entries(value)) {
      const path = field === '' ? key : `${field}.${key}`;
      const itemSchema = Object.hasOwn(known, key) ? known[key] : undefined;
      if (itemSchema !== undefined) walk(item, itemSchema, path);
      else found.push(new ConfigError(file, path, `unknown field, ignored${suggestion(key, Object.keys(known))}`));
    }
  };
  walk(data, EXTERNAL_SERVICE_SCHEMA, '');
  return found;
}

/** ` (did you mean "targetPort"?)` for a key that differs from a known one by case or by up to two edits. */
function suggestion(key: string, known: readonly string[]): string {
  const match =
    known.find((candidate) => candidate.toLowerCase() === key.toLowerCase()) ??
    known.find((candidate) => editDistance(candidate.toLowerCase(), key.toLowerCase()) <= 2);
  return match === undefined ? '' : ` (did you mean "${match}"?)`;
}

/** Levenshtein distance, for short field names only. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64 || b.length > 64) return Infinity;
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}
