import * as Flags from '@oclif/core/flags'
import type { PasswordResult } from '../actions/password.js'
import { AkmCommand } from '../cli/base-command.js'
import { dockerTargetFlags } from '../cli/docker-flags.js'
import { credentialFlags, targetFlags } from '../cli/flags.js'

export default class Password extends AkmCommand {
  static override summary = 'Print the SSH password of the management pod.'
  static override description =
    `Reads the password from the cluster Secret the management pod uses (or, when you may exec but not read Secrets, from /work/akamas_password in the pod) and prints only the password and a newline on stdout, so that it can be piped: akm-access password | pbcopy.

With --key, prints the private key instead; with --key-file, writes it to a file with mode 0600.

With --docker, the docker-compose management container's password: its CUSTOM_PASSWORD, else the one it generated into /work/akamas_password.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> | pbcopy',
    '<%= config.bin %> <%= command.id %> --json',
    '<%= config.bin %> <%= command.id %> --key-file ~/.ssh/akamas',
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...targetFlags,
    ...credentialFlags,
    key: Flags.boolean({ summary: 'Print the private key instead of the password.', exclusive: ['key-file'] }),
    'key-file': Flags.string({ summary: 'Write the private key to this file, with mode 0600.' }),
    force: Flags.boolean({ summary: 'Overwrite the --key-file if it exists.', dependsOn: ['key-file'] }),
    ...dockerTargetFlags,
  }

  async run(): Promise<PasswordResult | undefined> {
    const { flags } = await this.parse(Password, this.ownArgv)
    const { runPassword } = await import('../actions/password.js')
    const result = await runPassword(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        credentials: { secret: flags.secret, password: flags['password-field'], privateKey: flags['key-field'] },
        key: flags.key,
        keyFile: flags['key-file'],
        force: flags.force,
      },
      this.deps(),
    )
    if (this.jsonEnabled()) return result
    if (result.keyFile) this.io.stderr.write(`wrote the private key from ${result.source} to ${result.keyFile}\n`)
    else this.io.stdout.write(`${result.privateKey ?? `${result.password}\n`}`)
    return undefined
  }
}
