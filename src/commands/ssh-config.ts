import * as Flags from '@oclif/core/flags'
import { AkmCommand } from '../cli/base-command.js'
import { credentialFlags, targetFlags } from '../cli/flags.js'

export default class SshConfig extends AkmCommand {
  static override summary =
    'Print (or add to ~/.ssh/config) a Host entry so that plain ssh, scp, rsync, sftp and VS Code reach the management pod.'
  static override description =
    `Writes an OpenSSH Host entry (default name: akamas) that reaches the management pod through "akm-access proxy" (no port to forward, no second terminal), trusts the pod's host key under its stable alias in akm-access's known_hosts (StrictHostKeyChecking yes), and logs in as akamas:

- with the private key from the Secret, written once to ~/.config/akm-access/keys/HOST (mode 0600);
- on password-only installations, with nothing written: the entry makes OpenSSH start (once, with "Match exec") a master connection that akm-access authenticates through its own askpass hook (SSH_ASKPASS with SSH_ASKPASS_REQUIRE=force in that ssh's environment); later ssh, scp, sftp and rsync ride it (ControlPath). The password never appears in a file, a command line or an environment. The master closes after 15 minutes unused, or with ssh -O exit HOST.

First it connects once with akm-access's own host key check (a question, or --accept-new-host-key). Without --write the entry goes to stdout. With --write it goes to ~/.ssh/akm-access/config, which one Include line at the top of ~/.ssh/config pulls in; writing again replaces the entry, and the rest of ~/.ssh/config stays as it was. --remove takes it out.

The context, namespace and (unless it is the default one) kubeconfig in use are written into the entry, so that ssh reaches the same installation from any shell or editor.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --write',
    '<%= config.bin %> <%= command.id %> --write --host akamas-prod --context prod -n akamas',
    '<%= config.bin %> <%= command.id %> >> ~/.ssh/config',
    '<%= config.bin %> <%= command.id %> --remove --host akamas-prod',
  ]

  static override flags = {
    ...targetFlags,
    ...credentialFlags,
    host: Flags.string({ summary: 'Host name of the entry (ssh HOST).', default: 'akamas' }),
    write: Flags.boolean({
      summary: 'Add the entry to ~/.ssh/config (through ~/.ssh/akm-access/config) instead of printing it.',
    }),
    remove: Flags.boolean({ summary: 'Remove the entry (and its key file) that --write added.', exclusive: ['write'] }),
    user: Flags.string({ char: 'u', summary: 'User to log in as.', default: 'akamas' }),
    'remote-port': Flags.integer({ summary: 'Port of sshd in the pod.', default: 22, min: 1, max: 65535 }),
    'accept-new-host-key': Flags.boolean({
      summary: 'Trust the host key on first use without asking (a changed key is still refused).',
    }),
    'known-hosts': Flags.string({ summary: 'known_hosts file (default: ~/.config/akm-access/known_hosts).' }),
    'passphrase-file': Flags.string({ summary: 'File holding the passphrase of an encrypted private key.' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(SshConfig, this.ownArgv)
    const [{ runSshConfig, usageLines, reportWrite }, { selfCommand }, { say }] = await Promise.all([
      import('../actions/ssh-config.js'),
      import('../cli/self.js'),
      import('../terminal/io.js'),
    ])
    const result = await runSshConfig(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        credentials: { secret: flags.secret, password: flags['password-field'], privateKey: flags['key-field'] },
        host: flags.host,
        write: flags.write,
        remove: flags.remove,
        user: flags.user,
        remotePort: flags['remote-port'],
        acceptNewHostKey: flags['accept-new-host-key'],
        knownHostsFile: flags['known-hosts'],
        passphraseFile: flags['passphrase-file'],
        self: selfCommand(),
        cluster: { kubeconfig: flags.kubeconfig, context: flags.context, namespace: flags.namespace },
      },
      this.deps(),
    )
    if (result.auth === 'removed' || result.auth === 'absent') {
      say(this.io, result.auth === 'removed' ? `removed the entry for ${result.host}` : `no entry for ${result.host}`)
      return
    }
    if (!flags.write) {
      this.io.stdout.write(result.entry ?? '')
      return
    }
    const { sshConfigPaths } = await import('../ssh/ssh-config-file.js')
    reportWrite(
      { io: this.io },
      result,
      sshConfigPaths(this.io.env.HOME || (await import('node:os')).homedir()).userConfig,
    )
    say(
      this.io,
      [
        `${result.auth === 'key' ? `logs in with the key in ${result.keyFile}` : 'logs in with the password, through a master connection that akm-access authenticates'}. Now:`,
        ...usageLines(result, undefined),
      ].join('\n'),
    )
  }
}
