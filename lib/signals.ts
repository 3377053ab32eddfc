import { setMaxListeners } from 'node:events';
import type { Logger } from './log.js';

/**
 * SIGINT/SIGTERM abort one AbortController: the loop finishes the step it is in and stops.
 * A second signal exits at once with status 1.
 */
export function abortOnSignals(log?: Logger): AbortController {
  const controller = new AbortController();
  // Every command of a cycle listens on this signal, and a cycle runs several per IP at once.
  setMaxListeners(0, controller.signal);
  let received = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    received++;
    if (received > 1) {
      log?.warn(`second ${signal}: exiting now`);
      process.exit(1);
    }
    log?.info(`${signal} received: finishing the current step, then stopping`);
    controller.abort(new Error(`${signal} received`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller;
}
