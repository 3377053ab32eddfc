/**
 * genrule.py's port dictionaries: port -> what it was allocated for ('-' when merely marked as
 * taken). A Map keeps insertion order as the Python dict did, and setting an existing key keeps
 * its place, so `lookup` finds the same "first allocated" port as the original's get_port.
 */

export const MIN_PORT = 2049;
export const MAX_PORT = 65535;
const MARKED = '-';

export class PortTable {
  private readonly ports = new Map<number, string>();

  /** Marks a port as taken (overwriting whatever it was allocated for, as the original did). */
  mark(port: number): void {
    this.ports.set(port, MARKED);
  }

  /** The lowest port from MIN_PORT not in the table, now allocated for `value`; undefined when none is left. */
  allocate(value: string): number | undefined {
    for (let port = MIN_PORT; port <= MAX_PORT; port++) {
      if (!this.ports.has(port)) {
        this.ports.set(port, value);
        return port;
      }
    }
    return undefined;
  }

  /** The first port, in insertion order, allocated for `value`. */
  lookup(value: string): number | undefined {
    for (const [port, allocatedFor] of this.ports) if (allocatedFor === value) return port;
    return undefined;
  }

  get size(): number {
    return this.ports.size;
  }
}
