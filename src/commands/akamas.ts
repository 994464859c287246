import * as Flags from '@oclif/core/flags'
import { AkmCommand } from '../cli/base-command.js'
import { escapeCharFlag, targetFlags } from '../cli/flags.js'
import { AccessError, ExitCode } from '../errors.js'

export default class Akamas extends AkmCommand {
  static override summary = 'Run the Akamas CLI in the management pod, with the local files it names uploaded.'
  static override description =
    `Runs akamas ARGS… in the management pod, in /work, as if the Akamas CLI were installed here: arguments reach it exactly as typed (no remote shell re-reads them), stdin, stdout and stderr are streamed, a terminal is used when this is one (so it can ask you to log in), and its exit status is akm-access's.

Local files and folders named in the arguments are uploaded first, to a folder of this run under /work/.akm-access/uploads, and the arguments rewritten to their paths there; the folder is removed when the command ends (--keep-uploads keeps it). An argument is taken as a local file when it exists here and is the value of -f/--file, or looks like a path: it contains /, starts with ., or ends in .yaml, .yml or .json (also as --option=VALUE). Everything else passes through as typed; a pod path is written :/work/… (:x is /work/x).

Without --, every argument is the Akamas CLI's. akm-access's own flags go before --: akm-access akamas -n prod -- list study.

--print-alias prints a shell function that makes a plain akamas typed here run through akm-access (bash, zsh or fish).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> list study',
    '<%= config.bin %> <%= command.id %> create study ./study.yaml',
    '<%= config.bin %> <%= command.id %> --keep-uploads -- install optimization-pack ./my-pack/',
    '<%= config.bin %> <%= command.id %> login',
    'eval "$(<%= config.bin %> <%= command.id %> --print-alias)"    # in ~/.bashrc or ~/.zshrc',
    '<%= config.bin %> <%= command.id %> --print-alias --shell fish | source',
  ]

  // Not strict, or oclif would read `akamas login` as a command `akamas:login`. No arguments of our own, though:
  // the Akamas CLI's are split off first (see split), so anything left before `--` is a mistake (run() says so).
  static override strict = false

  static override flags = {
    ...targetFlags,
    'keep-uploads': Flags.boolean({ summary: 'Keep the folder of uploaded files in the pod (its path is printed).' }),
    tty: Flags.boolean({ char: 't', summary: 'Force a TTY even without a terminal on stdout (as ssh -t).' }),
    'no-tty': Flags.boolean({ char: 'T', summary: 'Never allocate a TTY (as ssh -T).', exclusive: ['tty'] }),
    'escape-char': escapeCharFlag,
    'print-alias': Flags.boolean({
      summary: 'Print a shell function `akamas` that runs the Akamas CLI through akm-access.',
    }),
    shell: Flags.string({
      summary: 'Shell of --print-alias (default: from $SHELL).',
      options: ['bash', 'zsh', 'fish'],
      dependsOn: ['print-alias'],
    }),
  }

  /** The command line as given (the base class's parse rewrites this.argv). */
  private readonly typed: string[] = [...this.argv]

  /**
   * Which arguments are ours and which the Akamas CLI's. Without `--`, all are the Akamas CLI's (its own `--` or
   * `--version` included), unless --print-alias is among them. With `--`, what precedes it is ours only if it
   * starts with a flag: `akamas -n prod -- list study` is ours up to `--`, `akamas echo -- x` is all the Akamas CLI's.
   */
  private split(): { own: string[]; akamas: string[] } {
    const typed = this.typed
    const separator = typed.indexOf('--')
    const before = separator < 0 ? typed : typed.slice(0, separator)
    if (before.includes('--print-alias')) return { own: before, akamas: [] }
    if (separator < 0 || !typed[0]?.startsWith('-')) return { own: [], akamas: [...typed] }
    return { own: before, akamas: typed.slice(separator + 1) }
  }

  protected override get ownArgv(): string[] {
    return this.split().own
  }

  private get akamasArgs(): string[] {
    return this.split().akamas
  }

  async run(): Promise<void> {
    const { flags, argv } = await this.parse(Akamas, this.ownArgv)
    if (argv.length > 0) {
      throw new AccessError(`Unexpected argument: ${argv[0]} (before --, only akm-access flags)`, {
        exitCode: ExitCode.usage,
        hint: 'put the Akamas CLI command after --: akm-access akamas -n prod -- list study',
      })
    }
    if (flags['print-alias']) {
      const { aliasScript, detectShell } = await import('../akamas/alias.js')
      const shell = (flags.shell as 'bash' | 'zsh' | 'fish' | undefined) ?? detectShell(this.io.env.SHELL)
      const fixed = this.ownArgv.filter((arg, i, all) => {
        if (arg === '--print-alias' || arg.startsWith('--shell=')) return false
        return arg !== '--shell' && all[i - 1] !== '--shell'
      })
      this.io.stdout.write(aliasScript(shell, this.config.bin, fixed))
      return
    }
    const { runAkamas } = await import('../actions/akamas.js')
    process.exitCode = await runAkamas(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        args: this.akamasArgs,
        tty: flags['no-tty'] ? 'never' : flags.tty ? 'force' : 'auto',
        escapeChar: flags['escape-char'],
        keepUploads: flags['keep-uploads'],
        program: 'akamas',
      },
      this.deps(),
    )
  }
}
