import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../lib/exec.js';

/**
 * The first process of a lab container (lab/kubelet.ts starts it as PID 1 of a new PID and mount
 * namespace inside the pod's network namespace): it makes the container's view of the files, then
 * runs the container's program with exactly the pod's environment, passes SIGTERM on to it, and
 * exits with its exit code. The files are this machine's, as the container's image, except:
 * - /etc and /root are copy-on-write layers (overlayfs) kept in the pod's folder, so that nothing
 *   the container writes there (a mount point, ssh's known_hosts) reaches the machine's own;
 * - /run, ~/.ssh and ~/.kube are empty (an image has none of the machine's keys or kubeconfig);
 * - each volume is bind-mounted at its mountPath (read-only when asked).
 * All of it happens in the container's own mount namespace, which nothing outside sees.
 *
 * Usage: node container-init.js SPEC.json
 */

export interface ContainerInitSpec {
  /** Folders of the pod's copy-on-write layers (upper and work directories are made under it). */
  layersDir: string;
  mounts: { source: string; target: string; readOnly: boolean }[];
  argv: string[];
  env: Record<string, string>;
  /** Full capabilities (a privileged container); otherwise the container runtime's default set. */
  privileged: boolean;
  /** Folders made empty (tmpfs) before the mounts; default /run, /root/.ssh and /root/.kube. */
  emptyDirs?: string[];
}

/** The capabilities a container runtime grants a container that is not privileged (Docker's and containerd's default). */
export const DEFAULT_CAPABILITIES = [
  'chown', 'dac_override', 'fsetid', 'fowner', 'mknod', 'net_raw', 'setgid', 'setuid', 'setfcap', 'setpcap', 'net_bind_service', 'sys_chroot', 'kill', 'audit_write',
];

const LAYERED = ['/etc', '/root'];
const EMPTY = ['/run', '/root/.ssh', '/root/.kube'];

async function mount(args: string[]): Promise<void> {
  await run('mount', args, { timeoutMs: 10_000 });
}

export async function prepareFiles(spec: ContainerInitSpec): Promise<void> {
  for (const dir of LAYERED) {
    const layer = path.join(spec.layersDir, dir.replaceAll('/', '_'));
    fs.mkdirSync(path.join(layer, 'upper'), { recursive: true });
    fs.mkdirSync(path.join(layer, 'work'), { recursive: true });
    await mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${dir},upperdir=${layer}/upper,workdir=${layer}/work`, dir]);
  }
  for (const dir of spec.emptyDirs ?? EMPTY) {
    fs.mkdirSync(dir, { recursive: true });
    await mount(['-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', dir]);
  }
  for (const volume of spec.mounts) {
    fs.mkdirSync(volume.target, { recursive: true });
    await mount(['--bind', volume.source, volume.target]);
    if (volume.readOnly) await mount(['-o', 'remount,bind,ro', volume.target]);
  }
}

export function capabilityPrefix(privileged: boolean): string[] {
  if (privileged) return [];
  const caps = DEFAULT_CAPABILITIES.map((cap) => `+${cap}`).join(',');
  return ['setpriv', `--bounding-set=-all,${caps}`, '--inh-caps=-all', '--'];
}

async function main(specFile: string): Promise<number> {
  const spec = JSON.parse(fs.readFileSync(specFile, 'utf8')) as ContainerInitSpec;
  await prepareFiles(spec);
  const [file, ...args] = [...capabilityPrefix(spec.privileged), ...spec.argv];
  const child = spawn(file as string, args, { env: spec.env, stdio: 'inherit', cwd: '/' });
  // PID 1 of the namespace: a signal from outside reaches this process only; the container gets it from here.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) => {
    child.on('error', (error) => {
      process.stderr.write(`container: cannot run ${spec.argv.join(' ')}: ${error.message}\n`);
      resolve(127);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGKILL' ? 137 : 143)));
  });
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const specFile = process.argv[2];
  if (specFile === undefined) {
    process.stderr.write('usage: container-init SPEC.json\n');
    process.exitCode = 2;
  } else {
    main(specFile).then(
      (code) => process.exit(code),
      (error: unknown) => {
        process.stderr.write(`container: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(126);
      },
    );
  }
}
