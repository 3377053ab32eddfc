import path from 'node:path';
import { PACKAGE_ROOT } from './netns.js';

/**
 * What the lab node runs for a container, since it has no container runtime: the images it knows,
 * mapped to programs of this machine.
 * - `forwarder:<tag>` (the image forwarder/Dockerfile builds): bin/forwarder, with the container's
 *   args (its default command is the forwarder).
 * - The README's app pods, `python -m SimpleHTTPServer [PORT]` (or `python3 -m http.server [PORT]`)
 *   in any image: the lab's HTTP server on that port (default 8000), logging each request's client
 *   address to the container's output, as SimpleHTTPServer does.
 * Anything else cannot run here, and is reported as the container's waiting reason.
 */

export interface ContainerSpec {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
}

export class UnknownImageError extends Error {
  override name = 'UnknownImageError';
}

const HTTP_SERVER = path.join(PACKAGE_ROOT, 'lab', 'http-server.mjs');
const FORWARDER = path.join(PACKAGE_ROOT, 'bin', 'forwarder');

/** The argv that plays the container on this machine; `podName` names the HTTP server's replies. */
export function containerArgv(container: ContainerSpec, podName: string): string[] {
  const image = container.image ?? '';
  const words = [...(container.command ?? []), ...(container.args ?? [])];
  if (/^forwarder(:[\w.-]+)?$/.test(image) && container.command === undefined) return [FORWARDER, ...(container.args ?? [])];
  const http = /^python3? -m (SimpleHTTPServer|http\.server)(?: (\d{1,5}))?$/.exec(words.join(' '));
  if (http) return [process.execPath, HTTP_SERVER, '0.0.0.0', http[2] ?? '8000', '-', podName];
  throw new UnknownImageError(`the lab node cannot run image ${JSON.stringify(image)}${words.length > 0 ? ` with command ${JSON.stringify(words.join(' '))}` : ''}`);
}
