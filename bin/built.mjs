// Loads a program compiled into dist/ (npm ci and npm run build compile it). Without the build, or
// without the installed packages, Node would print a stack trace: say in one line what to run instead.
export async function runBuilt(name) {
  try {
    await import(new URL(`../dist/bin/${name}.js`, import.meta.url).href);
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    const missing = /Cannot find (?:module|package) '([^']+)'/.exec(String(error.message))?.[1] ?? 'a module';
    const what = missing.includes('/dist/') ? `it is not built (${missing} is missing)` : `${missing} is not installed`;
    process.stderr.write(`bin/${name}: ${what}: run \`npm ci\` (or \`npm run build\`) first\n`);
    process.exit(1);
  }
}
