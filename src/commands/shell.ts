import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { AkmCommand } from '../cli/base-command.js'
import { dockerTargetFlags } from '../cli/docker-flags.js'
import { escapeCharFlag, keepaliveFlag, targetFlags } from '../cli/flags.js'

export default class Shell extends AkmCommand {
  static override summary = 'Open a shell in the management pod, or run one command there.'
  static override description =
    `Finds the management pod (its name changes with every rollout), then opens an interactive login shell in /work — bash when the image has it, sh otherwise — like kubectl exec -it, with the terminal size kept in sync and the terminal always restored.

With -- CMD ARGS, runs that command in /work instead. Its arguments reach it exactly as given (no remote shell re-parses them); stdin, stdout and stderr are streamed byte for byte and its exit status becomes akm-access's. A lost connection exits 255, never 0.

Type ~. at the start of a line to leave a frozen session, ~? for the other escapes.

With --docker, the same in the docker-compose management container, through the Docker Engine API.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> -- akamas list studies',
    'tar c ./study | <%= config.bin %> <%= command.id %> -- tar x -C /work',
    '<%= config.bin %> <%= command.id %> -- cat /work/report.csv > report.csv',
  ]

  static override strict = false
  static override args = {
    // ignoreStdin: oclif would otherwise read stdin for a missing argument, eating data meant for the pod.
    command: Args.string({
      description: 'command and arguments to run (after --)',
      required: false,
      ignoreStdin: true,
    }),
  }

  static override flags = {
    ...targetFlags,
    tty: Flags.boolean({ char: 't', summary: 'Force a TTY even without a terminal on stdout (as ssh -t).' }),
    'no-tty': Flags.boolean({ char: 'T', summary: 'Never allocate a TTY (as ssh -T).', exclusive: ['tty'] }),
    'escape-char': escapeCharFlag,
    keepalive: keepaliveFlag,
    ...dockerTargetFlags,
  }

  async run(): Promise<void> {
    const { flags, argv } = await this.parse(Shell, this.ownArgv)
    const [{ runShell }, { parseDuration }] = await Promise.all([
      import('../actions/shell.js'),
      import('../kube/duration.js'),
    ])
    process.exitCode = await runShell(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        command: this.remoteCommand ?? (argv as string[]),
        tty: flags['no-tty'] ? 'never' : flags.tty ? 'force' : 'auto',
        escapeChar: flags['escape-char'],
        keepaliveMs: parseDuration(flags.keepalive, '--keepalive'),
      },
      this.deps(),
    )
  }
}
