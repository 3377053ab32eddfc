import fs from 'node:fs';
import path from 'node:path';

/**
 * A ConfigMap (or Secret, or projected) volume as kubelet's atomic writer makes it: the data lives
 * in a timestamped `..<time>` directory, `..data` is a symlink to it, and each top-level entry
 * (e.g. `data.yaml`) is a symlink to `..data/<entry>`. An update writes a new directory and
 * renames a fresh symlink over `..data` in one step, then removes the old directory, so a reader
 * sees either the old or the new files, never a mix. Content equal to what is there is left alone.
 */

export interface VolumeFile {
  /** Path inside the volume (may have directories, e.g. `a/b.txt`). */
  path: string;
  content: string | Buffer;
  /** File mode (default 0644). */
  mode?: number;
}

/** kubelet's name for a payload directory: `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` (UTC). */
function payloadName(now: Date, counter: bigint): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}_${two(now.getUTCMonth() + 1)}_${two(now.getUTCDate())}_${two(now.getUTCHours())}_${two(now.getUTCMinutes())}_${two(now.getUTCSeconds())}`;
  return `..${stamp}.${String(counter % 1_000_000_000n).padStart(9, '0')}`;
}

function sameContent(dir: string, files: readonly VolumeFile[]): boolean {
  const data = path.join(dir, '..data');
  if (!fs.existsSync(data)) return false;
  const listed = (folder: string, prefix = ''): string[] =>
    fs.readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
      const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      return entry.isDirectory() ? listed(path.join(folder, entry.name), relative) : [relative];
    });
  const present = listed(data).sort();
  if (present.join('\0') !== files.map((file) => file.path).sort().join('\0')) return false;
  return files.every((file) => {
    const target = path.join(data, file.path);
    const stats = fs.statSync(target);
    return (stats.mode & 0o777) === (file.mode ?? 0o644) && Buffer.from(file.content).equals(fs.readFileSync(target));
  });
}

/** Writes the volume; returns whether anything changed. */
export function writeVolume(dir: string, files: readonly VolumeFile[]): boolean {
  fs.mkdirSync(dir, { recursive: true });
  if (sameContent(dir, files)) return false;
  const dataLink = path.join(dir, '..data');
  const previous = fs.existsSync(dataLink) ? fs.readlinkSync(dataLink) : undefined;
  const payload = payloadName(new Date(), process.hrtime.bigint());
  for (const file of files) {
    const target = path.join(dir, payload, file.path);
    if (!target.startsWith(path.join(dir, payload) + path.sep)) throw new Error(`volume file path ${JSON.stringify(file.path)} leaves the volume`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, file.content, { mode: file.mode ?? 0o644 });
    fs.chmodSync(target, file.mode ?? 0o644);
  }
  fs.mkdirSync(path.join(dir, payload), { recursive: true });
  fs.symlinkSync(payload, path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), dataLink);
  const entries = new Set(files.map((file) => file.path.split('/')[0] as string));
  for (const name of entries) {
    const link = path.join(dir, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith('..') && !entries.has(name)) fs.rmSync(path.join(dir, name), { force: true });
  }
  if (previous) fs.rmSync(path.join(dir, previous), { recursive: true, force: true });
  return true;
}

/** A volume of text files by name (a ConfigMap's keys), each with mode 0644. */
export function writeConfigMapVolume(dir: string, files: Record<string, string>): void {
  writeVolume(
    dir,
    Object.entries(files).map(([name, content]) => ({ path: name, content })),
  );
}
