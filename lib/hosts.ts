import { isIPv4, unicastIPv4Problem } from './ipv4.js';

/**
 * Host and user names as they reach ssh's command line. Each is a value, never an option: a name
 * starting with '-' (ssh would read `-Jevil.example` as a jump host) is never valid.
 */

/** RFC 1123 host names: labels of letters, digits and '-', neither starting nor ending with '-'. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** A POSIX-style login name, as sshd and useradd accept it. */
export const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/** Why a value is neither a unicast IPv4 address nor a host name, or undefined when it is one. */
export function hostProblem(value: string): string | undefined {
  // Digits and dots only: an address, never a name (ssh would read "1.2.3" as 1.2.0.3).
  if (/^[\d.]+$/.test(value) || isIPv4(value)) return unicastIPv4Problem(value);
  if (!HOST_NAME.test(value)) return 'is neither an IPv4 address nor a host name';
  return undefined;
}

/** Why `[user@]host` is not an ssh destination, or undefined when it is one. */
export function sshDestinationProblem(value: string): string | undefined {
  const at = value.lastIndexOf('@');
  if (at !== -1 && !USER_NAME.test(value.slice(0, at))) return `user "${value.slice(0, at)}" is not a user name`;
  const host = value.slice(at + 1);
  const problem = hostProblem(host);
  return problem === undefined ? undefined : `host "${host}" ${problem}`;
}
