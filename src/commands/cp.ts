import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { CpResult } from '../actions/cp.js'
import { AkmCommand } from '../cli/base-command.js'
import { sshAccessFlags, toSshAccessOptions } from '../cli/transfer-flags.js'
import { AccessError, ExitCode } from '../errors.js'

export default class Cp extends AkmCommand {
  static override summary = 'Copy files and folders to or from the management pod.'
  static override description =
    `Pod paths start with a colon: :/work/study.yaml, or :study.yaml relative to /work (: alone is /work). Either all sources are local and DEST is in the pod, or the other way round.

Folders are copied whole, links inside them as links; modes and modification times are kept. Into an existing folder each source keeps its name; a DEST ending in / (or given several sources) is a folder, created if missing. Files already there are replaced.

Every file is written under a temporary name next to its destination, checked (its size, and its SHA-256 computed on both sides when the pod has sha256sum), and only then renamed into place: a failed or interrupted copy (Ctrl-C) leaves nothing half-written under the real name. Progress is shown on a terminal.

Files travel over SFTP through the same tunnel and host key checks as akm-access ssh, many requests in flight at once.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> ./study.yaml :/work/studies/',
    '<%= config.bin %> <%= command.id %> -r ./workflows ./systems :',
    '<%= config.bin %> <%= command.id %> :/work/results ./results-copy',
    '<%= config.bin %> <%= command.id %> --json :report.csv . | jq .bytes',
  ]

  static override strict = false
  static override enableJsonFlag = true
  static override args = {
    // ignoreStdin: oclif would otherwise read stdin for a missing argument.
    paths: Args.string({ description: 'SRC… DEST (pod paths start with :)', required: false, ignoreStdin: true }),
  }

  static override flags = {
    ...sshAccessFlags,
    recursive: Flags.boolean({
      char: 'r',
      summary: 'Accepted for habit (scp -r, cp -r): folders are always copied whole.',
    }),
    quiet: Flags.boolean({ char: 'q', summary: 'No progress bar and no summary line.' }),
  }

  async run(): Promise<CpResult | undefined> {
    const { flags, argv } = await this.parse(Cp, this.ownArgv)
    const paths = [...(argv as string[]), ...(this.remoteCommand ?? [])]
    if (paths.length < 2) {
      throw new AccessError('cp needs at least one source and a destination', {
        exitCode: ExitCode.usage,
        hint: 'akm-access cp SRC… DEST, with pod paths written :/work/…',
      })
    }
    const { runCp } = await import('../actions/cp.js')
    const result = await runCp(
      {
        ...toSshAccessOptions(flags),
        sources: paths.slice(0, -1),
        dest: paths.at(-1)!,
        quiet: flags.quiet || this.jsonEnabled(),
      },
      this.deps(),
    )
    return this.jsonEnabled() ? result : undefined
  }
}
