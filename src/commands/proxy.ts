import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { AkmCommand } from '../cli/base-command.js'
import { dockerStreamFlags } from '../cli/docker-flags.js'
import { keepaliveFlag, targetFlags } from '../cli/flags.js'
import { renderError } from '../cli/render-error.js'

export default class ProxyCommand extends AkmCommand {
  static override summary = "Join stdin/stdout to the management pod's sshd, for OpenSSH's ProxyCommand."
  static override description =
    `Opens one stream to the management pod's sshd (or --remote-port) over the Kubernetes API and joins it to stdin and stdout: no local port at all. Meant for ssh's ProxyCommand (akm-access ssh-config writes one); if the pod is being replaced it waits up to --pod-timeout for a ready one. Only protocol bytes go to stdout; it exits when either side ends, and with 255 and a one-line message on stderr when the stream to the pod fails (16 when nothing listens on the port in the pod).

The HOST and PORT that ssh passes (%h %p) are accepted and ignored: the installation is chosen by --context, -n and --kubeconfig.`

  static override examples = [
    "ssh -o ProxyCommand='<%= config.bin %> <%= command.id %> --context prod -n akamas' akamas@akamas",
    '<%= config.bin %> ssh-config --write    # writes such an entry for you',
  ]

  static override args = {
    // ignoreStdin: stdin is the SSH connection; oclif must never read it for a missing argument.
    host: Args.string({ description: "ssh's %h (ignored)", required: false, ignoreStdin: true }),
    port: Args.string({ description: "ssh's %p (ignored)", required: false, ignoreStdin: true }),
  }

  static override flags = {
    ...targetFlags,
    'remote-port': Flags.integer({ summary: 'Port in the pod.', default: 22, min: 1, max: 65535 }),
    'pod-timeout': Flags.string({
      summary: 'How long to wait for a ready management pod when there is none (e.g. 30s; 0: fail at once).',
      default: '30s',
    }),
    keepalive: keepaliveFlag,
    ...dockerStreamFlags,
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(ProxyCommand, this.ownArgv)
    const [{ runProxy }, { parseRequestTimeout }] = await Promise.all([
      import('../actions/proxy.js'),
      import('../kube/duration.js'),
    ])
    process.exitCode = await runProxy(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        remotePort: flags['remote-port'],
        podTimeoutMs: parseRequestTimeout(flags['pod-timeout'], '--pod-timeout'),
        keepaliveMs: parseRequestTimeout(flags.keepalive, '--keepalive'),
      },
      this.deps(),
    )
  }

  /** ssh prints its ProxyCommand's stderr as is, in the middle of its own messages: one line, prefixed. */
  protected override async catch(error: Error & { exitCode?: number }): Promise<void> {
    const debug = this.ownArgv.includes('--debug')
    const rendered = renderError(error, { debug, color: false })
    process.exitCode = rendered.exitCode
    if (!rendered.text) return
    if (debug) {
      this.io.stderr.write(rendered.text)
      return
    }
    const [message = '', hint] = rendered.text.trimEnd().split('\n')
    const oneLine = `akm-access proxy: ${message.replace(/^Error: /, '')}${hint ? ` (${hint.replace(/^Hint: /, '')})` : ''}`
    this.io.stderr.write(`${oneLine}\n`)
  }
}
