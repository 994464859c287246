/**
 * A listener on 127.0.0.1 whose every accepted connection is carried to a port of the management pod by its own
 * pod stream. Binding happens first and the port is read back from the socket, so there is no race between
 * choosing a free port and taking it; when the preferred port is busy, get-port proposes another.
 */
import { createServer, type Server, type Socket } from 'node:net'
import type { TargetStream } from '../backend/target.js'
import { AccessError, ExitCode } from '../errors.js'
import type { PodStreamTarget } from './pod-stream.js'

export interface LocalForwardOptions {
  /** Preferred local port; 0 means any free port. */
  port: number
  /** The port in the pod. */
  remotePort: number
  /**
   * Opens a stream to the pod's port; called once per accepted connection (it may pick a new pod each time, and
   * wait for one). `signal` aborts when the listener closes.
   */
  connect: (remotePort: number, signal: AbortSignal) => Promise<TargetStream>
  onConnection?: (event: ForwardEvent) => void
}

export type ForwardEvent =
  | { kind: 'open'; id: number; from: string; target: PodStreamTarget }
  /** `bytesIn`: from the pod to the client; `bytesOut`: from the client to the pod. */
  | { kind: 'close'; id: number; target: PodStreamTarget; bytesIn: number; bytesOut: number; durationMs: number }
  /** The connection could not be carried (no stream), or its stream failed; `target` is set in the second case. */
  | { kind: 'error'; id: number; message: string; target?: PodStreamTarget }

export interface LocalForward {
  readonly port: number
  /** True when the preferred port was busy and another was taken. */
  readonly fellBack: boolean
  readonly activeConnections: number
  /** Cuts the open connections whose pod stream `filter` selects (e.g. those to a pod that is gone); returns how many. */
  dropConnections(filter: (target: PodStreamTarget) => boolean): number
  close(): Promise<void>
}

const loopback = '127.0.0.1'

export async function startLocalForward(options: LocalForwardOptions): Promise<LocalForward> {
  const sockets = new Set<Socket>()
  const streams = new Set<TargetStream>()
  let nextId = 1
  const closing = new AbortController()
  const server = createServer((socket) => {
    const id = nextId++
    sockets.add(socket)
    socket.setNoDelay(true)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    // Hold the client's bytes until the pod stream is open.
    socket.pause()
    options.connect(options.remotePort, closing.signal).then(
      (stream) => {
        if (socket.destroyed) return void stream.destroy()
        streams.add(stream)
        const openedAt = Date.now()
        options.onConnection?.({
          kind: 'open',
          id,
          from: `${socket.remoteAddress}:${socket.remotePort}`,
          target: stream.target,
        })
        stream.pipe(socket)
        socket.pipe(stream)
        socket.resume()
        const finish = (error?: Error) => {
          if (!streams.delete(stream)) return
          if (error) options.onConnection?.({ kind: 'error', id, message: error.message, target: stream.target })
          options.onConnection?.({
            kind: 'close',
            id,
            target: stream.target,
            // Counted by the streams themselves: no extra 'data' listener on the hot path.
            bytesIn: socket.bytesWritten,
            bytesOut: socket.bytesRead,
            durationMs: Date.now() - openedAt,
          })
          stream.destroy()
          socket.destroy()
        }
        stream.on('error', finish)
        stream.on('close', () => finish())
        socket.on('close', () => finish())
      },
      (error: Error) => {
        // Fail fast: the client sees its connection closed at once instead of hanging.
        options.onConnection?.({ kind: 'error', id, message: error.message })
        socket.destroy()
      },
    )
  })
  server.on('error', () => {})

  const { port, fellBack } = await listen(server, options.port)
  return {
    port,
    fellBack,
    get activeConnections() {
      return streams.size
    },
    dropConnections(filter) {
      let dropped = 0
      for (const stream of [...streams]) {
        if (!filter(stream.target)) continue
        stream.destroy()
        dropped++
      }
      return dropped
    },
    async close() {
      closing.abort()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const stream of streams) stream.destroy()
      for (const socket of sockets) socket.destroy()
      await closed
    },
  }
}

async function listen(server: Server, preferred: number): Promise<{ port: number; fellBack: boolean }> {
  const tryListen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const onError = (error: Error) => {
        server.off('listening', onListening)
        reject(error)
      }
      const onListening = () => {
        server.off('error', onError)
        resolve((server.address() as { port: number }).port)
      }
      server.once('error', onError)
      server.once('listening', onListening)
      server.listen(port, loopback)
    })
  try {
    return { port: await tryListen(preferred), fellBack: false }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw listenError(preferred, error as Error)
  }
  const { default: getPort, portNumbers } = await import('get-port')
  for (let attempt = 0; attempt < 5; attempt++) {
    const candidate = await getPort({
      host: loopback,
      port: portNumbers(preferred + 1, Math.min(preferred + 100, 65535)),
    })
    try {
      return { port: await tryListen(candidate), fellBack: true }
    } catch (error) {
      // Someone took it between get-port's check and our bind: ask again.
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw listenError(candidate, error as Error)
    }
  }
  return { port: await tryListen(0), fellBack: true }
}

function listenError(port: number, error: Error): AccessError {
  return new AccessError(`cannot listen on ${loopback}:${port}: ${error.message}`, {
    exitCode: ExitCode.local,
    hint: 'choose another port with --port, or --port 0 for any free port',
  })
}
