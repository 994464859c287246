/**
 * A tiny HTTP CONNECT proxy, as corporate proxies are to kubectl: it opens TCP tunnels and counts them, so tests
 * can prove that traffic went through it (proxy-url, HTTPS_PROXY) or around it (NO_PROXY, loopback). It can
 * require Basic credentials (407 otherwise) and resolve made-up host names, standing in for the corporate DNS
 * that only the proxy sees.
 */
import { createServer, type IncomingMessage } from 'node:http'
import { type AddressInfo, connect, type Socket } from 'node:net'

export interface ConnectProxyOptions {
  /** Host names only the proxy can resolve, e.g. `{ 'kube.akm.test': '127.0.0.1' }`. */
  hosts?: Record<string, string>
  /** Require `Proxy-Authorization: Basic` with these credentials. */
  credentials?: { user: string; password: string }
}

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>`, without credentials. */
  readonly url: string
  readonly port: number
  /** Every CONNECT target (`host:port`) the proxy opened a tunnel to, in order. */
  readonly tunnels: string[]
  /** CONNECT requests refused for missing or wrong credentials. */
  readonly refused: number
  close(): Promise<void>
}

export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const tunnels: string[] = []
  let refused = 0
  const sockets = new Set<Socket>()
  const server = createServer((_req, res) => {
    // Only CONNECT is served: API traffic to an https server never comes as plain proxied requests.
    res.writeHead(405, { Connection: 'close' }).end()
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    client.on('error', () => client.destroy())
    if (options.credentials && !authorized(req, options.credentials)) {
      refused += 1
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n',
      )
      return
    }
    const target = req.url ?? ''
    const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target)
    if (!match) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
      return
    }
    const host = match[1]!.replace(/^\[|\]$/g, '')
    const upstream = connect(Number(match[2]), options.hosts?.[host] ?? host)
    sockets.add(upstream)
    upstream.on('close', () => sockets.delete(upstream))
    let connected = false
    upstream.once('connect', () => {
      connected = true
      tunnels.push(target)
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    upstream.on('error', () => {
      if (connected) client.destroy()
      else client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n')
    })
    client.on('close', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    tunnels,
    get refused() {
      return refused
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function authorized(req: IncomingMessage, credentials: { user: string; password: string }): boolean {
  const header = req.headers['proxy-authorization'] ?? ''
  const expected = `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`
  return header === expected
}
