/**
 * A listener on 127.0.0.1 whose every accepted connection is carried to a port of the management pod by its own
 * pod stream. Binding happens first and the port is read back from the socket, so there is no race between
 * choosing a free port and taking it; when the preferred port is busy, get-port proposes another.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { AccessError, ExitCode } from '../errors.js'
import type { PodStream, PodStreamTarget } from './pod-stream.js'

export interface LocalForwardOptions {
  /** Preferred local port; 0 means any free port. */
  port: number
  /** The port in the pod. */
  remotePort: number
  /** Opens a stream to the pod's port; called once per accepted connection (it may pick a new pod each time). */
  connect: (remotePort: number) => Promise<PodStream>
  onConnection?: (event: ForwardEvent) => void
}

export type ForwardEvent =
  | { kind: 'open'; id: number; from: string; target: PodStreamTarget }
  | { kind: 'close'; id: number; bytesIn: number; bytesOut: number }
  | { kind: 'error'; id: number; message: string }

export interface LocalForward {
  readonly port: number
  /** True when the preferred port was busy and another was taken. */
  readonly fellBack: boolean
  readonly activeConnections: number
  close(): Promise<void>
}

const loopback = '127.0.0.1'

export async function startLocalForward(options: LocalForwardOptions): Promise<LocalForward> {
  const sockets = new Set<Socket>()
  const streams = new Set<PodStream>()
  let nextId = 1
  const server = createServer((socket) => {
    const id = nextId++
    sockets.add(socket)
    socket.setNoDelay(true)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    // Hold the client's bytes until the pod stream is open.
    socket.pause()
    options.connect(options.remotePort).then(
      (stream) => {
        if (socket.destroyed) return void stream.destroy()
        streams.add(stream)
        options.onConnection?.({
          kind: 'open',
          id,
          from: `${socket.remoteAddress}:${socket.remotePort}`,
          target: stream.target,
        })
        let bytesIn = 0
        let bytesOut = 0
        stream.on('data', (chunk: Buffer) => {
          bytesIn += chunk.length
        })
        socket.on('data', (chunk: Buffer) => {
          bytesOut += chunk.length
        })
        stream.pipe(socket)
        socket.pipe(stream)
        socket.resume()
        const finish = (error?: Error) => {
          if (!streams.delete(stream)) return
          if (error) options.onConnection?.({ kind: 'error', id, message: error.message })
          options.onConnection?.({ kind: 'close', id, bytesIn, bytesOut })
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
    async close() {
      for (const stream of streams) stream.destroy()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
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
