import * as Flags from '@oclif/core/flags'
import { AkmCommand } from '../cli/base-command.js'
import { dockerStreamFlags } from '../cli/docker-flags.js'
import { keepaliveFlag, targetFlags } from '../cli/flags.js'

export default class Forward extends AkmCommand {
  static override summary = "Forward a local port to the management pod's sshd, following the pod across restarts."
  static override description =
    `Listens on 127.0.0.1:PORT (2222 when free, another port otherwise; --port 0 for any) and carries each connection to the management pod's sshd (or --remote-port) over the Kubernetes API, so that ssh, scp, rsync, sftp or VS Code can use it from other terminals. Many connections at once.

It follows the management pod: when the pod is replaced (a rollout, an eviction, a crash), new connections go to the new ready pod without restarting the command (waiting up to --pod-timeout for one), and connections to a pod that is gone are cut at once instead of hanging. --verbose shows each connection and every change of pod on stderr.

Ctrl-C (or SIGTERM) closes the listener and every connection and exits 0.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 0 --verbose',
    '<%= config.bin %> <%= command.id %> --remote-port 5432 --port 15432',
  ]

  static override flags = {
    ...targetFlags,
    port: Flags.integer({
      char: 'p',
      summary: 'Preferred local port (another is taken when busy; 0: any free port).',
      default: 2222,
      min: 0,
      max: 65535,
    }),
    'remote-port': Flags.integer({ summary: 'Port in the pod.', default: 22, min: 1, max: 65535 }),
    user: Flags.string({ char: 'u', summary: 'User in the example ssh command line.', default: 'akamas' }),
    'pod-timeout': Flags.string({
      summary: 'How long a connection waits for a ready management pod when there is none (e.g. 30s; 0: fail at once).',
      default: '30s',
    }),
    verbose: Flags.boolean({ summary: 'Show each connection, retry and change of pod on stderr.' }),
    'known-hosts': Flags.string({ summary: 'known_hosts file (default: ~/.config/akm-access/known_hosts).' }),
    keepalive: keepaliveFlag,
    ...dockerStreamFlags,
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Forward, this.ownArgv)
    const [{ runForward }, { parseRequestTimeout }] = await Promise.all([
      import('../actions/forward.js'),
      import('../kube/duration.js'),
    ])
    const stop = new AbortController()
    const onSignal = () => stop.abort()
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
    // once: a second Ctrl-C while closing ends the process the hard way.
    for (const signal of signals) process.once(signal, onSignal)
    try {
      process.exitCode = await runForward(
        {
          target: { pod: flags.pod, selector: flags.selector, container: flags.container },
          localPort: flags.port,
          remotePort: flags['remote-port'],
          user: flags.user,
          podTimeoutMs: parseRequestTimeout(flags['pod-timeout'], '--pod-timeout'),
          keepaliveMs: parseRequestTimeout(flags.keepalive, '--keepalive'),
          verbose: flags.verbose,
          knownHostsFile: flags['known-hosts'],
        },
        this.deps(),
        stop.signal,
      )
    } finally {
      for (const signal of signals) process.off(signal, onSignal)
    }
  }
}
