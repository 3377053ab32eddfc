import { Command } from 'commander';
import { errorMessage } from '../lib/errors.js';
import { buildClusterBinaries, type BuildOptions } from '../lab/kube-build.js';

/** npm run cluster:build [-- --force]: see lab/kube-build.ts. */

const program = new Command('cluster:build')
  .description('build the pinned Kubernetes control-plane binaries, kubectl and etcd from their Go modules into the cache folder (CLUSTER_CACHE_DIR, default .cache)')
  .option('--force', 'rebuild even when the cached binaries are current')
  .option('--skip-without-go', 'exit 0 with a note when go is not on PATH (the cluster tests then report themselves as skipped)')
  .action(async (options: BuildOptions) => {
    try {
      process.exitCode = await buildClusterBinaries(options);
    } catch (error) {
      process.stderr.write(`cluster:build: ${errorMessage(error)}\n`);
      process.exitCode = 1;
    }
  });
await program.parseAsync();
