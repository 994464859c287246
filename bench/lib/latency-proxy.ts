/**
 * A TCP proxy that delays every chunk by half the round-trip time in each direction: the API server as if it were
 * across a network, where the number of round trips and TLS handshakes decides, not process start.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net'

export interface LatencyProxy {
  readonly port: number
  close(): Promise<void>
}

export async function startLatencyProxy(targetPort: number, roundTripMs: number): Promise<LatencyProxy> {
  const oneWay = roundTripMs / 2
  const sockets = new Set<Socket>()
  const relay = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      // A fixed delay keeps the order of chunks.
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk)
      }, oneWay)
    })
    from.on('end', () => setTimeout(() => to.end(), oneWay))
    from.on('error', () => to.destroy())
    from.on('close', () => setTimeout(() => to.destroy(), oneWay))
  }
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort })
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    }
    relay(client, upstream)
    relay(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
