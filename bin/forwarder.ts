import { runCli } from '../lib/cli.js';
import { createLogger } from '../lib/log.js';
import { buildProgram } from '../forwarder/command.js';
import { runForwarder } from '../forwarder/run.js';
import { showStatus } from '../forwarder/status.js';

const log = createLogger('forwarder');

await runCli(
  buildProgram({
    run: (settings, once) => runForwarder(settings, once, log),
    status: (settings) => showStatus(settings),
  }),
);
