import * as Args from '@oclif/core/args'
import { AkmCommand } from '../cli/base-command.js'

/** Run by OpenSSH as SSH_ASKPASS for the master connection that ssh-master starts, not by people. */
export default class Askpass extends AkmCommand {
  static override hidden = true
  static override summary = 'Answer the password prompt of the master ssh connection that akm-access started.'
  static override strict = false
  static override args = {
    prompt: Args.string({ description: "ssh's prompt (after --)", required: false, ignoreStdin: true }),
  }

  async run(): Promise<void> {
    const { argv } = await this.parse(Askpass, this.ownArgv)
    const { runAskpass } = await import('../actions/askpass.js')
    process.exitCode = await runAskpass((this.remoteCommand ?? (argv as string[])).join(' '), this.io)
  }
}
