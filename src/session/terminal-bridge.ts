/**
 * Joins the local terminal (or pipes) to a remote session: raw mode in and out, the terminal size now and on
 * every resize, OpenSSH's `~` escapes, backpressure both ways, and a terminal that is always restored — on a
 * normal end, a lost connection, a signal or an exception.
 */
import type { Io } from '../terminal/io.js'
import { EscapeDetector, escapeHelp } from './escape.js'
import type { RemoteSession, SessionEnd } from './remote-session.js'

export interface BridgeOptions {
  /** The remote side has a terminal: put ours in raw mode and forward resizes. */
  tty: boolean
  /** OpenSSH's escape character, or 'none'. Only active with a TTY, as in ssh. */
  escapeChar: string
  /** Printed after `~.` (ssh says `Connection to HOST closed.`). */
  hostLabel: string
  /** For tests: the signals to listen to (default SIGINT, SIGTERM, SIGHUP). */
  signals?: NodeJS.Signals[]
  /** For tests: where to subscribe to signals (default: process). */
  signalSource?: Pick<NodeJS.Process, 'on' | 'off'>
}

export async function bridgeSession(io: Io, session: RemoteSession, options: BridgeOptions): Promise<SessionEnd> {
  const cleanups: (() => void)[] = []
  const { stdin, stdout, stderr } = io
  try {
    if (options.tty && stdin.isTTY && stdin.setRawMode) {
      const wasRaw = Boolean(stdin.isRaw)
      stdin.setRawMode(true)
      const restore = () => stdin.setRawMode?.(wasRaw)
      // Even a crash that skips our finally must not leave the user's terminal raw.
      process.once('exit', restore)
      cleanups.push(() => {
        restore()
        process.off('exit', restore)
      })
    }

    if (options.tty && stdout.isTTY) {
      const onResize = () => {
        if (stdout.columns && stdout.rows) session.resize({ cols: stdout.columns, rows: stdout.rows })
      }
      stdout.on('resize', onResize)
      cleanups.push(() => stdout.off('resize', onResize))
    }

    // The reader of our output went away (`akm-access ssh -- cat big | head`): stop the remote side as a local
    // command would be stopped, by SIGPIPE (exit 141), instead of waiting forever on a window nobody drains.
    const onOutputError = () => session.abort('SIGPIPE')
    stdout.on('error', onOutputError)
    cleanups.push(() => stdout.off('error', onOutputError))

    // Remote output to ours, never ending our own stdout/stderr (they belong to the process).
    session.stdout.pipe(stdout, { end: false })
    cleanups.push(() => session.stdout.unpipe(stdout))
    if (session.stderr) {
      session.stderr.pipe(stderr, { end: false })
      const remoteStderr = session.stderr
      cleanups.push(() => remoteStderr.unpipe(stderr))
    }

    const escapes = new EscapeDetector(options.tty ? options.escapeChar : 'none')
    const onData = (chunk: Buffer) => {
      const { forward, actions } = escapes.push(chunk)
      if (forward.length > 0 && !session.stdin.destroyed && !session.stdin.writableEnded) {
        if (!session.stdin.write(forward)) {
          stdin.pause()
          session.stdin.once('drain', () => stdin.resume())
        }
      }
      for (const action of actions) {
        if (action === 'help') stderr.write(escapeHelp(options.escapeChar))
        if (action === 'disconnect') session.abort('escape')
      }
    }
    const onEnd = () => {
      if (!session.stdin.destroyed && !session.stdin.writableEnded) session.stdin.end()
    }
    stdin.on('data', onData)
    stdin.once('end', onEnd)
    stdin.resume()
    cleanups.push(() => {
      stdin.off('data', onData)
      stdin.off('end', onEnd)
      stdin.pause()
    })

    const source = options.signalSource ?? process
    for (const signal of options.signals ?? (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[])) {
      const onSignal = () => session.abort(signal)
      source.on(signal, onSignal)
      cleanups.push(() => source.off(signal, onSignal))
    }

    const end = await session.ended
    // Let the last remote bytes reach our stdout before we report the end.
    await drained(session.stdout)
    if (session.stderr) await drained(session.stderr)
    if (end.kind === 'aborted' && end.reason === 'escape') {
      stderr.write(`${options.tty ? '\r\n' : ''}Connection to ${options.hostLabel} closed.\r\n`)
    }
    // The remote prompt is usually the last thing shown: the error about the lost connection starts a line of its own.
    if (end.kind === 'lost' && options.tty) stderr.write('\r\n')
    return end
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        cleanup()
      } catch {
        // Restoring must go on even if one step fails (e.g. stdin already closed).
      }
    }
  }
}

function drained(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      stream.off('end', done)
      stream.off('close', done)
      resolve()
    }
    stream.once('end', done)
    stream.once('close', done)
    // A stream that was aborted may never end (what it holds has no reader left): don't wait for it beyond a
    // moment. Not unref'd: with nothing else left alive, an unref'd timer would let the process exit right here,
    // its command unfinished (Node's exit 13).
    const timer = setTimeout(done, 500)
  })
}
