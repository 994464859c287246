import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { AkmCommand } from '../cli/base-command.js'
import { dockerStreamFlags, identityFileFlag } from '../cli/docker-flags.js'
import { credentialFlags, escapeCharFlag, keepaliveFlag, targetFlags } from '../cli/flags.js'

export default class Ssh extends AkmCommand {
  static override summary = 'SSH into the management pod: credentials, tunnel and session in one command.'
  static override description =
    `Reads the SSH password or private key from the cluster Secret, opens a tunnel from 127.0.0.1:PORT to the pod's sshd (2222 when free) that other terminals can use while the session runs, and starts an SSH session as akamas.

The host key is verified: on first use its SHA256 fingerprint is shown for confirmation and stored in akm-access's own known_hosts under a stable alias for this cluster, namespace and workload, so a new pod or a new local port is not a new host. A changed key is refused.

With -- CMD ARGS, runs that command (as ssh does, the remote shell reads it) and exits with its status. ~. at the start of a line ends a frozen session.

With --docker, the docker-compose management container's sshd, reached without a published port: at the container's address, or through the Docker engine; the password is its CUSTOM_PASSWORD or /work/akamas_password.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 2222',
    '<%= config.bin %> <%= command.id %> -- ls -la /work',
    '<%= config.bin %> <%= command.id %> --accept-new-host-key -- akamas list studies',
  ]

  static override strict = false
  static override args = {
    // ignoreStdin: oclif would otherwise read stdin for a missing argument, eating data meant for the pod.
    command: Args.string({
      description: 'command to run instead of a login shell (after --)',
      required: false,
      ignoreStdin: true,
    }),
  }

  static override flags = {
    ...targetFlags,
    ...credentialFlags,
    port: Flags.integer({
      char: 'p',
      summary: 'Preferred local port of the tunnel (another is taken when busy; 0: any free port).',
      default: 2222,
      min: 0,
      max: 65535,
    }),
    'no-tunnel': Flags.boolean({ summary: 'Do not open a local port for other tools.' }),
    'remote-port': Flags.integer({ summary: 'Port of sshd in the pod.', default: 22, min: 1, max: 65535 }),
    user: Flags.string({ char: 'u', summary: 'User to log in as.', default: 'akamas' }),
    tty: Flags.boolean({ char: 't', summary: 'Force a TTY (as ssh -t).' }),
    'no-tty': Flags.boolean({ char: 'T', summary: 'Never allocate a TTY (as ssh -T).', exclusive: ['tty'] }),
    'escape-char': escapeCharFlag,
    'accept-new-host-key': Flags.boolean({
      summary: 'Trust the host key on first use without asking (a changed key is still refused).',
    }),
    'forget-host-key': Flags.boolean({
      summary: "Forget the stored host key of this installation's management pod, then exit.",
    }),
    'known-hosts': Flags.string({ summary: 'known_hosts file (default: ~/.config/akm-access/known_hosts).' }),
    'passphrase-file': Flags.string({ summary: 'File holding the passphrase of an encrypted private key.' }),
    keepalive: keepaliveFlag,
    'identity-file': identityFileFlag,
    ...dockerStreamFlags,
  }

  async run(): Promise<void> {
    const { flags, argv } = await this.parse(Ssh, this.ownArgv)
    const [{ runSsh }, { parseDuration }] = await Promise.all([
      import('../actions/ssh.js'),
      import('../kube/duration.js'),
    ])
    process.exitCode = await runSsh(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        credentials: { secret: flags.secret, password: flags['password-field'], privateKey: flags['key-field'] },
        command: this.remoteCommand ?? (argv as string[]),
        tty: flags['no-tty'] ? 'never' : flags.tty ? 'force' : 'auto',
        localPort: flags['no-tunnel'] ? undefined : flags.port,
        remotePort: flags['remote-port'],
        user: flags.user,
        escapeChar: flags['escape-char'],
        acceptNewHostKey: flags['accept-new-host-key'],
        knownHostsFile: flags['known-hosts'],
        passphraseFile: flags['passphrase-file'],
        identityFile: flags['identity-file'],
        forgetHostKey: flags['forget-host-key'],
        keepaliveMs: parseDuration(flags.keepalive, '--keepalive'),
      },
      this.deps(),
    )
  }
}
