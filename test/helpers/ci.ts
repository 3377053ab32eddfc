/**
 * Whether the tests run under CI (CI set, as .ci/run does, to anything but empty, false or 0):
 * there a layer that cannot run on the machine is an error instead of a skip.
 */
export function runningUnderCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== 'false' && value !== '0';
}
