import { runCli } from '../lib/cli.js';
import { buildGatewayProgram } from '../gateway/command.js';

await runCli(buildGatewayProgram());
