import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * The local copy of the rules that `scp` sends to the gateway hosts (see planDeliveries): a file
 * in a private temporary directory, removed when `use` returns.
 */
export async function withRulesFile<T>(rules: string, use: (localFile: string) => Promise<T>): Promise<T> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'k8s-ext-rules-'));
  try {
    const localFile = path.join(directory, 'rules.yaml');
    await fs.writeFile(localFile, rules, { mode: 0o600 });
    return await use(localFile);
  } finally {
    await fs.rm(directory, { recursive: true, force: true });
  }
}
