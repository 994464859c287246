import * as Flags from '@oclif/core/flags'
import { AkmCommand } from '../cli/base-command.js'
import { credentialFlags, targetFlags } from '../cli/flags.js'

/** Run by OpenSSH (the `Match exec` that ssh-config writes for password installations), not by people. */
export default class SshMaster extends AkmCommand {
  static override hidden = true
  static override summary = "Start the master ssh connection of a password installation's Host entry, if it is not up."

  static override flags = {
    ...targetFlags,
    ...credentialFlags,
    host: Flags.string({ summary: 'Host name of the entry.', required: true }),
    user: Flags.string({ char: 'u', summary: 'User to log in as.', default: 'akamas' }),
    'remote-port': Flags.integer({ summary: 'Port of sshd in the pod.', default: 22, min: 1, max: 65535 }),
    'known-hosts': Flags.string({ summary: 'known_hosts file (default: ~/.config/akm-access/known_hosts).' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SshMaster, this.ownArgv)
    const [{ runSshMaster }, { selfCommand }] = await Promise.all([
      import('../actions/ssh-master.js'),
      import('../cli/self.js'),
    ])
    process.exitCode = await runSshMaster(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        credentials: { secret: flags.secret, password: flags['password-field'], privateKey: flags['key-field'] },
        host: flags.host,
        user: flags.user,
        remotePort: flags['remote-port'],
        acceptNewHostKey: false,
        knownHostsFile: flags['known-hosts'],
        passphraseFile: undefined,
        self: selfCommand(),
        cluster: { kubeconfig: flags.kubeconfig, context: flags.context, namespace: flags.namespace },
      },
      this.deps(),
    )
  }
}
