/** Inputs a careless or hostile user might hand the programs. */

/** Nine levels of nine aliases each: a few hundred bytes that expand to 9^9 values. */
export function aliasBomb(levels = 9): string {
  const lines = ['  a0: &a0 [x, x, x, x, x, x, x, x, x]'];
  for (let level = 1; level < levels; level++) lines.push(`  a${level}: &a${level} [${Array(9).fill(`*a${level - 1}`).join(', ')}]`);
  return `kind: ExternalService\nanchors:\n${lines.join('\n')}\nmetadata:\n  name: *a${levels - 1}\n`;
}
