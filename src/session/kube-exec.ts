/**
 * The client side of exec over WebSocket (channel.k8s.io v4/v5) as a RemoteSession. Unlike client-node's Exec it
 * half-closes stdin on v5 ([255, 0]) instead of closing the socket, keeps backpressure both ways, pings so that idle
 * sessions survive load balancers, and treats a connection that ends without a status as lost, never as success.
 */
import { PassThrough, Writable } from 'node:stream'
import type { WebSocket } from 'ws'
import type { RemoteSession, SessionEnd, TerminalSize } from './remote-session.js'

const channel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const

export interface KubeExecOptions {
  tty: boolean
  /** Sent before anything else, so that the first prompt is drawn at the right size. */
  initialSize?: TerminalSize
  /** WebSocket ping interval; below the 60 s idle timeout of common load balancers. */
  pingIntervalMs?: number
  /** How long without any frame (pongs included) before the connection counts as dead. */
  deadAfterMs?: number
  /** Told once when stdin ends on a v4 connection, which has no way to signal end-of-file. */
  onV4StdinEnd?: () => void
}

interface ExecStatus {
  status?: string
  message?: string
  reason?: string
  details?: { causes?: { reason?: string; message?: string }[] }
}

export function openKubeExecSession(ws: WebSocket, protocol: string, options: KubeExecOptions): RemoteSession {
  const v5 = protocol === 'v5.channel.k8s.io'
  const stdout = new PassThrough()
  const stderr = options.tty ? undefined : new PassThrough()
  let status: ExecStatus | undefined
  let aborted: string | undefined
  let lastFrameAt = Date.now()

  const send = (id: number, payload: Buffer, callback?: (error?: Error) => void) => {
    if (ws.readyState !== ws.OPEN) {
      callback?.(new Error('the connection to the pod is closed'))
      return
    }
    ws.send(Buffer.concat([Buffer.from([id]), payload]), { binary: true }, callback)
  }

  const resize = (size: TerminalSize) => {
    if (!options.tty) return
    send(channel.resize, Buffer.from(JSON.stringify({ Width: size.cols, Height: size.rows })))
  }
  if (options.initialSize) resize(options.initialSize)

  const stdin = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      // The callback fires when ws has handed the frame to the socket: that is our backpressure.
      send(channel.stdin, chunk, (error) => callback(error ?? null))
    },
    final(callback) {
      if (v5) send(channel.close, Buffer.from([channel.stdin]), () => callback())
      else {
        // v4 cannot half-close: closing the socket would lose the rest of the output (kubernetes#89899).
        options.onV4StdinEnd?.()
        callback()
      }
    },
  })
  stdin.on('error', () => {})

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    lastFrameAt = Date.now()
    // Aborted: what still arrives has no reader (and would pause the socket again, see abort).
    if (!isBinary || data.length === 0 || aborted !== undefined) return
    const id = data[0]
    const payload = data.subarray(1)
    if (id === channel.stdout || (id === channel.stderr && !stderr)) {
      if (payload.length > 0 && !stdout.write(payload)) {
        ws.pause()
        stdout.once('drain', () => ws.resume())
      }
    } else if (id === channel.stderr && stderr) {
      if (payload.length > 0 && !stderr.write(payload)) {
        ws.pause()
        stderr.once('drain', () => ws.resume())
      }
    } else if (id === channel.error) {
      status = parseStatus(payload, status)
    }
  })
  ws.on('pong', () => {
    lastFrameAt = Date.now()
  })
  ws.on('error', () => {})

  const pingIntervalMs = options.pingIntervalMs ?? 20_000
  const deadAfterMs = options.deadAfterMs ?? Math.max(3 * pingIntervalMs, 45_000)
  // 0 turns keepalives off (and with them the detection of a silently dead connection).
  const pinger =
    pingIntervalMs > 0
      ? setInterval(() => {
          if (Date.now() - lastFrameAt > deadAfterMs) {
            ws.terminate()
            return
          }
          if (ws.readyState === ws.OPEN) ws.ping()
        }, pingIntervalMs)
      : undefined
  pinger?.unref()

  const ended = new Promise<SessionEnd>((resolve) => {
    ws.once('close', (code: number, reason: Buffer) => {
      clearInterval(pinger)
      stdout.end()
      stderr?.end()
      if (!stdin.writableEnded) stdin.destroy()
      if (aborted !== undefined) return resolve({ kind: 'aborted', reason: aborted })
      if (status) return resolve(statusToEnd(status))
      const why = reason.length > 0 ? `: ${reason.toString('utf8')}` : ''
      resolve({
        kind: 'lost',
        reason:
          code === 1000
            ? 'the API server ended the session without an exit status'
            : code === 1006
              ? 'the connection to the pod was lost'
              : `the connection to the pod was closed (WebSocket code ${code}${why})`,
      })
    })
  })

  return {
    stdout,
    stderr,
    stdin,
    resize,
    ended,
    abort(reason) {
      if (aborted !== undefined) return
      aborted = reason
      ws.close(1000)
      // Our output may be paused by backpressure that nobody will relieve now (its reader is gone): a paused socket
      // neither reads the peer's close frame nor keeps the process alive, which then exits with the session
      // unsettled (Node's 13). Reading on finishes the handshake; a peer that does not answer is cut after a second.
      ws.resume()
      const cut = setTimeout(() => ws.terminate(), 1000)
      ws.once('close', () => clearTimeout(cut))
    },
  }
}

/** kubectl concatenates channel-3 messages until close; a v4/v5 server sends one JSON Status. */
function parseStatus(payload: Buffer, previous: ExecStatus | undefined): ExecStatus {
  const text = payload.toString('utf8')
  try {
    return JSON.parse(text) as ExecStatus
  } catch {
    // Protocols before v4 write plain text on the error channel.
    return { status: 'Failure', message: `${previous?.message ?? ''}${text}` }
  }
}

function statusToEnd(status: ExecStatus): SessionEnd {
  if (status.status === 'Success') return { kind: 'exit', code: 0 }
  if (status.reason === 'NonZeroExitCode') {
    const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode')
    const code = Number.parseInt(cause?.message ?? '', 10)
    if (Number.isInteger(code) && code >= 0 && code <= 255) return { kind: 'exit', code }
  }
  return { kind: 'failed', message: status.message ?? 'the API server reported a failure without a message' }
}
