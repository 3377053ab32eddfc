import fs from 'node:fs';
import path from 'node:path';

/**
 * A ConfigMap volume as the kubelet writes it: the data lives in a timestamped `..<ts>` directory,
 * `..data` is a symlink to it, and each key (e.g. `data.yaml`) is a symlink to `..data/<key>`. An
 * update writes a new directory and renames a fresh symlink over `..data` in one step, then
 * removes the old directory.
 */
export function writeConfigMapVolume(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  const previous = fs.existsSync(path.join(dir, '..data')) ? fs.readlinkSync(path.join(dir, '..data')) : undefined;
  const version = `..${Date.now()}_${process.hrtime.bigint()}`;
  fs.mkdirSync(path.join(dir, version));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, version, name), text);
  fs.symlinkSync(version, path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of Object.keys(files)) {
    const link = path.join(dir, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
  if (previous) fs.rmSync(path.join(dir, previous), { recursive: true, force: true });
}
