import { runCli } from '../lib/cli.js';
import { buildForwarderProgram } from '../forwarder/command.js';

await runCli(buildForwarderProgram());
