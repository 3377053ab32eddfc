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
  /** The ports allocated for each value, in allocation order (lookup skips those a mark took over). */
  private readonly allocated = new Map<string, number[]>();
  /**
   * Every port from MIN_PORT below this one is in the table. Ports are never freed, so the lowest
   * free port only rises: allocation does not rescan the range (65,535 ports in one table took
   * minutes when it did).
   */
  private lowestFree = MIN_PORT;

  /** Marks a port as taken (overwriting whatever it was allocated for, as the original did). */
  mark(port: number): void {
    this.ports.set(port, MARKED);
  }

  /** The lowest port from MIN_PORT not in the table, now allocated for `value`; undefined when none is left. */
  allocate(value: string): number | undefined {
    while (this.lowestFree <= MAX_PORT && this.ports.has(this.lowestFree)) this.lowestFree++;
    if (this.lowestFree > MAX_PORT) return undefined;
    const port = this.lowestFree++;
    this.ports.set(port, value);
    const ports = this.allocated.get(value);
    if (ports) ports.push(port);
    else this.allocated.set(value, [port]);
    return port;
  }

  /**
   * The first port, in insertion order, allocated for `value`. An allocated port is always new to
   * the table, so insertion order is allocation order.
   */
  lookup(value: string): number | undefined {
    return this.allocated.get(value)?.find((port) => this.ports.get(port) === value);
  }

  get size(): number {
    return this.ports.size;
  }
}
