/**
 * `akm-access ssh`: the two-terminal manual flow in one command. Finds the pod and reads its Secret (at the same
 * time), opens a local tunnel for other tools, and runs an SSH session over a pod stream of its own (ssh2 speaks
 * straight into the port-forward, no local hop), with the host key checked against our known_hosts.
 */
import type { Deps } from '../deps.js'
import { bridgeSession } from '../session/terminal-bridge.js'
import { removeHostKey } from '../ssh/known-hosts.js'
import { say } from '../terminal/io.js'
import { type LocalForward, startLocalForward } from '../tunnel/local-forward.js'
import { exitCodeOf } from './shell.js'
import { connectToPod, locateTarget, type SshAccessOptions, usableCredentials } from './ssh-access.js'

export interface SshOptions extends SshAccessOptions {
  /** The remote command (joined with spaces, as OpenSSH does); empty for a login shell. */
  command: string[]
  tty: 'auto' | 'force' | 'never'
  /** Preferred local port for the tunnel other tools can use; 0 = any; undefined = no listener. */
  localPort: number | undefined
  escapeChar: string
  /** Remove the stored host key of this installation and stop. */
  forgetHostKey: boolean
  /**
   * SSH keepalive interval in ms (0: none), as OpenSSH's ServerAliveInterval: traffic that keeps an idle session
   * past load balancers' idle timeouts, and notices a dead connection after three unanswered. The pod stream's own
   * pings go this often too (every 20 s when 0).
   */
  keepaliveMs: number
}

export async function runSsh(
  options: SshOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter' | 'logger'>,
): Promise<number> {
  const { io } = deps
  const { location, credentials } = await locateTarget(options, deps)
  if (options.forgetHostKey) {
    const removed = removeHostKey(location.knownHostsFile, location.hostKeyAlias)
    say(
      io,
      removed > 0
        ? `forgot the host key of ${location.hostKeyAlias} (${location.knownHostsFile})`
        : `no host key stored for ${location.hostKeyAlias}`,
    )
    return 0
  }
  const found = await credentials()
  const sshCredentials = await usableCredentials(found, options.passphraseFile, deps)
  const podName = location.name

  let tunnel: LocalForward | undefined
  const sock = await location.openStream(options.remotePort, { keepaliveMs: options.keepaliveMs })
  try {
    if (options.localPort !== undefined) {
      tunnel = await startLocalForward({
        port: options.localPort,
        remotePort: options.remotePort,
        connect: (port) => location.openStream(port),
      })
      if (tunnel.fellBack && options.localPort !== 0) {
        say(io, `port ${options.localPort} is busy; the tunnel uses ${tunnel.port}`)
      }
      // Said once, for the person at the terminal; a script running `ssh -- CMD` keeps a quiet stderr.
      if (io.stdin.isTTY || tunnel.fellBack) {
        say(
          io,
          `tunnel: 127.0.0.1:${tunnel.port} -> ${podName}:${options.remotePort} ` +
            `(scp -P ${tunnel.port} ${options.user}@127.0.0.1:/work/…)`,
        )
      }
    }

    const connection = await connectToPod(location, sshCredentials, options, deps, sock)
    try {
      const tty =
        options.tty === 'never'
          ? false
          : options.tty === 'force' || (options.command.length === 0 && Boolean(io.stdin.isTTY))
      const term = io.env.TERM && io.env.TERM !== 'dumb' ? io.env.TERM : 'xterm-256color'
      const size = io.stdout.columns && io.stdout.rows ? { cols: io.stdout.columns, rows: io.stdout.rows } : undefined
      const session = await connection.openSession({
        tty,
        term,
        ...(size ? { size } : {}),
        ...(options.command.length > 0 ? { command: options.command.join(' ') } : {}),
      })
      const end = await bridgeSession(io, session, { tty, escapeChar: options.escapeChar, hostLabel: podName })
      return exitCodeOf(end, podName, location.noun)
    } finally {
      connection.end()
    }
  } finally {
    sock.destroy()
    await tunnel?.close()
  }
}
