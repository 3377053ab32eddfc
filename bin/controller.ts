import { buildControllerProgram } from '../controller/command.js';
import { runCli } from '../lib/cli.js';

await runCli(buildControllerProgram());
