import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { SyncResult } from '../actions/sync.js'
import { AkmCommand } from '../cli/base-command.js'
import { sshAccessFlags, toSshAccessOptions } from '../cli/transfer-flags.js'
import { AccessError, ExitCode } from '../errors.js'

export default class Sync extends AkmCommand {
  static override summary = 'Sync a local folder of resource files to the management pod (or back with --pull).'
  static override description =
    `One-way sync of LOCAL_DIR to the pod folder REMOTE_DIR (default :/work/<name of LOCAL_DIR>): only new and changed files are sent — changed meaning another size or modification time, or with --checksum another SHA-256 — each written under a temporary name, verified and renamed into place, as cp does. Modes and times are kept. --delete also removes from the pod what LOCAL_DIR no longer has; --exclude leaves matching names out on both sides.

--pull syncs the other way: REMOTE_DIR into LOCAL_DIR.

--watch keeps going: every change under LOCAL_DIR is synced about a third of a second after the last one, and a lost connection (a pod restart) is re-established. Ctrl-C stops.

A summary line ends each sync (sent 3 files (1.2 MiB), deleted 1, 42 unchanged); --dry-run lists what would change instead of changing it; --json prints the result as JSON (one line per sync with --watch).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> ./resources',
    '<%= config.bin %> <%= command.id %> ./resources :/work/resources --delete --dry-run',
    '<%= config.bin %> <%= command.id %> ./study --watch --exclude .git --exclude "*.swp"',
    '<%= config.bin %> <%= command.id %> ./results :/work/results --pull',
  ]

  static override strict = false
  static override enableJsonFlag = true
  static override args = {
    // ignoreStdin: oclif would otherwise read stdin for a missing argument.
    local: Args.string({ description: 'the local folder', required: false, ignoreStdin: true }),
    remote: Args.string({
      description: 'the pod folder, :/work/… (default: /work/<name of the local folder>)',
      required: false,
      ignoreStdin: true,
    }),
  }

  static override flags = {
    ...sshAccessFlags,
    pull: Flags.boolean({ summary: 'Sync from the pod to the local folder instead.' }),
    delete: Flags.boolean({ summary: 'Delete files in the destination that the source does not have.' }),
    'dry-run': Flags.boolean({ summary: 'List what would change, change nothing.' }),
    checksum: Flags.boolean({
      char: 'c',
      summary: 'Compare files of equal size by SHA-256 instead of modification time.',
    }),
    watch: Flags.boolean({ char: 'w', summary: 'Keep syncing as local files change, until Ctrl-C.' }),
    exclude: Flags.string({
      char: 'x',
      summary: 'Leave out names matching this pattern (*.log, .git, build/*.tmp); repeatable.',
      multiple: true,
      // Greedy, oclif would take the folders that follow for more patterns.
      multipleNonGreedy: true,
    }),
    quiet: Flags.boolean({ char: 'q', summary: 'No progress bar and no summary line.' }),
  }

  async run(): Promise<SyncResult | undefined> {
    const { flags, argv } = await this.parse(Sync, this.ownArgv)
    const paths = [...(argv as string[]), ...(this.remoteCommand ?? [])]
    if (paths.length < 1 || paths.length > 2) {
      throw new AccessError(
        paths.length < 1 ? 'sync needs a local folder' : 'sync takes one local and one pod folder',
        {
          exitCode: ExitCode.usage,
          hint: 'akm-access sync ./resources [:/work/resources]',
        },
      )
    }
    const { runSync } = await import('../actions/sync.js')
    const result = await runSync(
      {
        ...toSshAccessOptions(flags),
        localDir: paths[0]!,
        remoteDir: paths[1],
        pull: flags.pull,
        delete: flags.delete,
        dryRun: flags['dry-run'],
        checksum: flags.checksum,
        watch: flags.watch,
        exclude: flags.exclude ?? [],
        quiet: flags.quiet,
        json: this.jsonEnabled(),
      },
      this.deps(),
    )
    return this.jsonEnabled() && !flags.watch ? result : undefined
  }
}
