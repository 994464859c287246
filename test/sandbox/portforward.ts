/**
 * Port-forward for the sandbox API server: the three ways a client reaches a pod port, each answered as the real
 * API server + kubelet pair would (spec: /work/shared/reference/kubernetes-streaming-protocols.md §6).
 *
 * | request                                                             | who sends it                      |
 * |---------------------------------------------------------------------|-----------------------------------|
 * | `GET …/portforward`, WebSocket, `SPDY/3.1+portforward.k8s.io`       | kubectl ≥ 1.31 (default)          |
 * | `POST …/portforward`, `Upgrade: SPDY/3.1`, `portforward.k8s.io`     | kubectl's fallback                |
 * | `GET …/portforward?ports=22`, WebSocket, `v4.channel.k8s.io` (or "") | @kubernetes/client-node, akm-access |
 *
 * The first two carry SPDY (spdy.ts) with one error+data stream pair per forwarded TCP connection; the third
 * carries one TCP connection per requested port over channels 2k (data) and 2k+1 (error).
 *
 * Wiring (the caller authenticates, authorises and looks the pod up first; errors before the upgrade are its job):
 *
 * ```ts
 * const portForward = new PortForwardServer()
 * httpsServer.on('upgrade', (req, socket, head) => {
 *   if (/\/pods\/[^/]+\/portforward$/.test(new URL(req.url!, 'https://x').pathname))
 *     portForward.handleUpgrade(req, socket, head, target, faults)
 * })
 * // "replace the pod": drop everything it carried, abruptly
 * portForward.destroyConnections((c) => c.target.podUid === oldUid)
 * ```
 *
 * Or the function form, with a `ws` server shared with exec: `handlePortForwardUpgrade(req, socket, head, target,
 * faults, wss)`; destroying the upgraded `socket` then tears down everything it carried.
 *
 * Where this differs from the spec's wording, it follows the kubelet source: on a failed dial the error text is
 * followed by FIN on both streams (the kubelet's deferred `Close()`), not RST.
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { type RawData, type WebSocket, WebSocketServer } from 'ws'
import type { PodStreamTarget, StreamFaults } from './contracts.js'
import { type ByteTransport, SpdySession, type SpdyStream } from './spdy.js'

/** The WebSocket subprotocol of the SPDY tunnel (`WebsocketsSPDYTunnelingPrefix` + `PortForwardV1Name`). */
export const TUNNEL_PROTOCOL = 'SPDY/3.1+portforward.k8s.io'
/** The `X-Stream-Protocol-Version` of port-forward over direct SPDY. */
export const PORT_FORWARD_PROTOCOL = 'portforward.k8s.io'
export const V4_CHANNEL_PROTOCOL = 'v4.channel.k8s.io'
export const V4_BASE64_CHANNEL_PROTOCOL = 'v4.base64.channel.k8s.io'

/** The kubelet's subprotocols for plain WebSocket port-forward; "" stands for "the client offered none". */
const PLAIN_WEBSOCKET_PROTOCOLS = ['', V4_CHANNEL_PROTOCOL, V4_BASE64_CHANNEL_PROTOCOL]

/** The kubelet's `DefaultStreamCreationTimeout`: how long half of an error/data stream pair waits for the other. */
const STREAM_CREATION_TIMEOUT_MS = 30_000

/** How often an idle-timeout watchdog looks at `faults`, which may change while a connection is open. */
const FAULT_POLL_MS = 250

export type PortForwardProtocol = 'spdy-websocket' | 'spdy' | 'websocket'

/** One upgraded client connection (which, for SPDY, may carry many forwarded TCP connections). */
export interface PortForwardConnection {
  readonly target: PodStreamTarget
  readonly protocol: PortForwardProtocol
  /** Resolves once the client connection has closed, for whatever reason. */
  readonly closed: Promise<void>
  /** Drops the client connection and every pod connection it carries, without any goodbye (a vanished pod). */
  destroy(): void
}

/** Faults are read each time they matter, so a scenario can change them while connections are open. */
export type FaultSource = StreamFaults | (() => StreamFaults)

export interface PortForwardServerOptions {
  /** How long one stream of an error/data pair waits for its partner (default 30 s, as the kubelet). */
  streamCreationTimeoutMs?: number
  /**
   * A `noServer` WebSocket server to share (with exec, say); by default the instance makes its own. Any
   * `handleProtocols` it has is overridden for port-forward requests (see `acceptWebSocket`).
   */
  wss?: WebSocketServer
}

/**
 * Serves port-forward upgrades and keeps track of the connections it has upgraded, so that the sandbox can drop
 * them all at once. One instance serves every pod; it owns a `ws` server in `noServer` mode.
 */
export class PortForwardServer {
  private readonly wss: WebSocketServer
  private readonly ownsWss: boolean
  private readonly live = new Set<ClientLink>()
  /** The subprotocol to answer with, per request (see `acceptWebSocket` on why `ws` cannot choose it). */
  private readonly answerProtocol = new WeakMap<IncomingMessage, string>()
  private readonly streamCreationTimeoutMs: number

  constructor(options: PortForwardServerOptions = {}) {
    this.streamCreationTimeoutMs = options.streamCreationTimeoutMs ?? STREAM_CREATION_TIMEOUT_MS
    this.ownsWss = options.wss === undefined
    this.wss = options.wss ?? new WebSocketServer({ noServer: true, perMessageDeflate: false })
    // `ws` emits the 101's header lines before writing them, and they may be edited: the documented way to
    // answer with a subprotocol that `ws` itself would refuse to parse.
    this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const answer = this.answerProtocol.get(req)
      if (answer === undefined) return
      const at = headers.findIndex((line) => /^sec-websocket-protocol:/i.test(line))
      if (at >= 0) headers.splice(at, 1)
      headers.push(`Sec-WebSocket-Protocol: ${answer}`)
    })
  }

  /** The connections that are currently open. */
  get connections(): ReadonlySet<PortForwardConnection> {
    return this.live
  }

  /**
   * Takes over an HTTP upgrade of `…/pods/{name}/portforward` for `target`. The caller has already
   * authenticated the request and found the pod. Answers the request itself when it is not a valid
   * port-forward upgrade (400/403). Returns the connection, or undefined when the upgrade was refused. (If `ws`
   * itself refuses a malformed WebSocket handshake, the returned connection is already closing.)
   */
  handleUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: PodStreamTarget,
    faults: FaultSource,
  ): PortForwardConnection | undefined {
    const upgrade = (req.headers.upgrade ?? '').toLowerCase()
    if (req.method === 'POST' && upgrade === 'spdy/3.1') return this.upgradeSpdy(req, socket, head, target, faults)
    if (req.method === 'GET' && upgrade === 'websocket') {
      const offered = parseProtocolList(req.headers['sec-websocket-protocol'])
      if (offered.includes(TUNNEL_PROTOCOL)) return this.upgradeTunnel(req, socket, head, target, faults)
      return this.upgradePlainWebSocket(req, socket, head, offered, target, faults)
    }
    rejectWithStatus(socket, 400, 'BadRequest', `unsupported upgrade to ${req.headers.upgrade ?? 'nothing'}`)
    return undefined
  }

  /** Destroys the open connections that `filter` selects (all by default); returns how many. */
  destroyConnections(filter: (connection: PortForwardConnection) => boolean = () => true): number {
    let count = 0
    for (const link of [...this.live]) {
      if (!filter(link)) continue
      link.destroy()
      count++
    }
    return count
  }

  /** Destroys every connection and shuts the WebSocket server down (unless it was lent by the caller). */
  close(): void {
    this.destroyConnections()
    if (this.ownsWss) this.wss.close()
  }

  // -------------------------------------------------------------------------------------------------------------

  /** Direct SPDY: kubectl's fallback, or its only dialer with KUBECTL_PORT_FORWARD_WEBSOCKETS=false. */
  private upgradeSpdy(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: PodStreamTarget,
    faults: FaultSource,
  ): PortForwardConnection | undefined {
    // httpstream.Handshake reads every header line (exec's SPDY retry sends five), each split on commas.
    const versions = (req.headersDistinct['x-stream-protocol-version'] ?? [])
      .flatMap((line) => line.split(','))
      .map((version) => version.trim())
      .filter((version) => version !== '')
    if (versions.length === 0) {
      rejectWithStatus(socket, 400, 'BadRequest', 'unable to upgrade: X-Stream-Protocol-Version is required')
      return undefined
    }
    if (!versions.includes(PORT_FORWARD_PROTOCOL)) {
      // httpstream.Handshake answers with http.Error: plain text, plus the versions it would have accepted.
      const message = `unable to upgrade: unable to negotiate protocol: client supports [${versions.join(' ')}], server accepts [${PORT_FORWARD_PROTOCOL}]`
      writeResponse(socket, 403, {
        'Content-Type': 'text/plain; charset=utf-8',
        'X-Accepted-Stream-Protocol-Versions': PORT_FORWARD_PROTOCOL,
        'X-Content-Type-Options': 'nosniff',
        body: `${message}\n`,
      })
      return undefined
    }

    socket.on('error', () => {}) // 'close' follows and does the cleanup
    if ('setNoDelay' in socket && typeof socket.setNoDelay === 'function') (socket as Socket).setNoDelay(true)
    // Nothing may follow the 101 until the client speaks: kubectl reads the response through a bufio.Reader and
    // hands the raw connection to spdystream, so early bytes could be lost. A SPDY server never speaks first.
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Connection: Upgrade\r\n' +
        'Upgrade: SPDY/3.1\r\n' +
        `X-Stream-Protocol-Version: ${PORT_FORWARD_PROTOCOL}\r\n\r\n`,
    )
    const link = this.track(new ClientLink(target, 'spdy', faults, () => socket.destroy()))
    const session = new SpdySession({
      write: (chunk, onFlushed) => {
        link.touch()
        socket.write(chunk, onFlushed && (() => onFlushed()))
      },
      end: () => socket.end(),
      destroy: () => socket.destroy(),
    })
    this.serveSpdy(session, link)
    socket.on('data', (chunk: Buffer) => {
      link.touch()
      session.receive(chunk)
    })
    socket.on('end', () => session.end()) // the client is done (kubectl closes after its GOAWAY)
    socket.on('close', () => {
      session.transportClosed()
      link.markClosed()
    })
    if (head.length > 0) session.receive(head)
    return link
  }

  /** SPDY tunnelled in WebSocket binary messages: what kubectl ≥ 1.31 tries first. */
  private upgradeTunnel(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: PodStreamTarget,
    faults: FaultSource,
  ): PortForwardConnection | undefined {
    const link = this.track(new ClientLink(target, 'spdy-websocket', faults, () => socket.destroy()))
    this.acceptWebSocket(req, socket, head, TUNNEL_PROTOCOL, link, (ws) => {
      const transport: ByteTransport = {
        write: (chunk, onFlushed) => {
          link.touch()
          ws.send(chunk, { binary: true }, onFlushed && (() => onFlushed()))
        },
        end: () => ws.close(1000),
        destroy: () => ws.terminate(),
      }
      const session = new SpdySession(transport)
      this.serveSpdy(session, link)
      ws.on('message', (data, isBinary) => {
        link.touch()
        // The tunnel is a byte stream; kubectl's TunnelingConnection treats anything but binary as an error.
        if (!isBinary) session.destroy(new Error('non-binary message in the SPDY tunnel'))
        else session.receive(rawDataToBuffer(data))
      })
      ws.on('close', () => session.transportClosed())
    })
    return link
  }

  /** The kubelet's own WebSocket protocol, one TCP connection per port, as client-node and akm-access use it. */
  private upgradePlainWebSocket(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    offered: string[],
    target: PodStreamTarget,
    faults: FaultSource,
  ): PortForwardConnection | undefined {
    const ports = parsePortsQuery(req.url ?? '')
    if (typeof ports === 'string') {
      rejectWithStatus(socket, 400, 'BadRequest', ports)
      return undefined
    }
    // wsstream's handshake: the first protocol *in the client's order* that the server supports.
    const chosen = (offered.length > 0 ? offered : ['']).find((p) => PLAIN_WEBSOCKET_PROTOCOLS.includes(p))
    if (chosen === undefined) {
      // golang.org/x/net/websocket answers a failed handshake with a bare 403.
      writeResponse(socket, 403, { body: '' })
      return undefined
    }
    const link = this.track(new ClientLink(target, 'websocket', faults, () => socket.destroy()))
    this.acceptWebSocket(req, socket, head, chosen, link, (ws) => {
      servePlainWebSocket(ws, chosen === V4_BASE64_CHANNEL_PROTOCOL, ports, link)
    })
    return link
  }

  /**
   * `ws` validates Sec-WebSocket-Protocol as an RFC 7230 token list, and `/` is not a token character, so it
   * would answer kubectl's `SPDY/3.1+portforward.k8s.io` with 400 (and kubectl would silently fall back to
   * direct SPDY). So `ws` is shown only the chosen protocol, sanitised (whatever it then picks is that one), and
   * the 'headers' hook (see the constructor) puts the original back into the 101.
   */
  private acceptWebSocket(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    answer: string,
    link: ClientLink,
    onOpen: (ws: WebSocket) => void,
  ): void {
    if (answer === '') {
      delete req.headers['sec-websocket-protocol']
    } else {
      req.headers['sec-websocket-protocol'] = answer.replaceAll('/', '_')
      this.answerProtocol.set(req, answer)
    }
    // A failed handshake is answered by `ws` and the socket destroyed, which marks the link closed.
    socket.once('close', () => link.markClosed())
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      link.setKill(() => ws.terminate())
      ws.on('ping', () => link.touch())
      ws.on('pong', () => link.touch())
      ws.on('error', () => {}) // 'close' follows
      ws.on('close', () => link.markClosed())
      onOpen(ws)
    })
  }

  private track(link: ClientLink): ClientLink {
    this.live.add(link)
    void link.closed.then(() => this.live.delete(link))
    return link
  }

  /** The kubelet's SPDY port-forward handler (`httpstream.go`): pairs streams, then forwards each pair. */
  private serveSpdy(session: SpdySession, link: ClientLink): void {
    const pairs = new Map<string, StreamPair>()
    session.on('stream', (stream) => {
      // A stream the kubelet's httpStreamReceived refuses is reset without a reply.
      if (!isValidPortForwardStream(stream)) {
        stream.reset()
        return
      }
      stream.reply()
      const requestId = requestIdOf(stream)
      let pair = pairs.get(requestId)
      if (!pair) {
        const created: StreamPair = { requestId, timer: undefined }
        created.timer = setTimeout(() => {
          // The kubelet writes this and then forgets the pair, leaving the stream open; it is FINned here so that
          // a client waiting on the error stream learns about it.
          pairs.delete(requestId)
          created.error?.write(Buffer.from(`(conn=${link.id}, request=${requestId}) timed out waiting for streams`))
          created.error?.end()
        }, this.streamCreationTimeoutMs)
        pairs.set(requestId, created)
        pair = created
      }
      const type = stream.header('streamtype') as 'error' | 'data'
      if (pair[type]) {
        pair.error?.write(
          Buffer.from(`error processing stream for request ${requestId}: ${type} stream already assigned`),
        )
        return
      }
      pair[type] = stream
      if (pair.error && pair.data) {
        clearTimeout(pair.timer)
        pairs.delete(requestId)
        forwardSpdyPair(pair.data, pair.error, link)
      }
    })
    session.on('close', () => {
      for (const pair of pairs.values()) clearTimeout(pair.timer)
      pairs.clear()
    })
  }
}

const sharedServers = new WeakMap<WebSocketServer, PortForwardServer>()
let defaultServer: PortForwardServer | undefined

/** The PortForwardServer that `handlePortForwardUpgrade` uses for `wss` (one per `ws` server, made on demand). */
export function portForwardServerFor(wss?: WebSocketServer): PortForwardServer {
  if (!wss) {
    defaultServer ??= new PortForwardServer()
    return defaultServer
  }
  let server = sharedServers.get(wss)
  if (!server) {
    server = new PortForwardServer({ wss })
    sharedServers.set(wss, server)
  }
  return server
}

/**
 * Function form of `PortForwardServer.handleUpgrade`, for an API server that shares one `ws` server between exec
 * and port-forward. Destroying `socket` later (say, when the pod is replaced) ends everything it carries; the
 * connections are also listed by `portForwardServerFor(wss).connections`.
 */
export function handlePortForwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: PodStreamTarget,
  faults: FaultSource,
  wss?: WebSocketServer,
): PortForwardConnection | undefined {
  return portForwardServerFor(wss).handleUpgrade(req, socket, head, target, faults)
}

// ---------------------------------------------------------------------------------------------------------------
// SPDY stream pairs
// ---------------------------------------------------------------------------------------------------------------

interface StreamPair {
  readonly requestId: string
  timer: NodeJS.Timeout | undefined
  error?: SpdyStream
  data?: SpdyStream
}

/** httpStreamReceived: a `port` that parses as 1–65535 and a `streamtype` of `error` or `data`. */
function isValidPortForwardStream(stream: SpdyStream): boolean {
  const port = parsePort(stream.header('port') ?? '')
  const type = stream.header('streamtype')
  return typeof port === 'number' && port >= 1 && (type === 'error' || type === 'data')
}

/**
 * The pairing key. Clients older than the `requestid` header get the kubelet's best-effort fallback: streams
 * come as consecutive odd ids, so an error stream pairs with the data stream two ids later.
 */
function requestIdOf(stream: SpdyStream): string {
  const requestId = stream.header('requestid')
  if (requestId) return requestId
  return String(stream.header('streamtype') === 'error' ? stream.id : stream.id - 2)
}

function forwardSpdyPair(data: SpdyStream, error: SpdyStream, link: ClientLink): void {
  const port = parsePort(data.header('port') ?? '') as number
  const forward = startForward(link, port, {
    data: (chunk, onFlushed) => data.write(chunk, onFlushed),
    end: () => data.end(),
    error: (text) => error.write(Buffer.from(text)),
    // The kubelet closes (FINs) both streams when the forward returns, error or not. kubectl keeps the local
    // connection open until the error stream ends, so forgetting the error stream's FIN hangs the client.
    finish: () => {
      data.end()
      error.end()
    },
  })
  data.on('data', (chunk) => forward.clientData(chunk))
  data.on('end', () => forward.clientEnd())
  // A reset by the client, or the session going away, ends the forward; a normal close already has.
  data.on('close', () => forward.abort())
}

// ---------------------------------------------------------------------------------------------------------------
// Plain WebSocket (v4.channel.k8s.io and friends)
// ---------------------------------------------------------------------------------------------------------------

function servePlainWebSocket(ws: WebSocket, base64: boolean, ports: number[], link: ClientLink): void {
  // v4.channel.k8s.io: binary messages, [channel, ...payload]. v4.base64.channel.k8s.io: text messages,
  // '0'+channel followed by the base64 of the payload.
  const send = (channel: number, payload: Buffer, onFlushed?: () => void): void => {
    link.touch()
    const callback = onFlushed && (() => onFlushed())
    if (base64) ws.send(String.fromCharCode(48 + channel) + payload.toString('base64'), { binary: false }, callback)
    else ws.send(Buffer.concat([Buffer.of(channel), payload]), { binary: true }, callback)
  }
  let open = ports.length
  const forwards = ports.map((port, index) => {
    // Before any data the kubelet writes the port, 2 bytes little-endian, on both channels of the pair;
    // clients strip exactly those 2 bytes from each channel.
    const prefix = Buffer.alloc(2)
    prefix.writeUInt16LE(port)
    link.toClient.run(() => send(2 * index, prefix))
    link.toClient.run(() => send(2 * index + 1, prefix))
    return startForward(link, port, {
      data: (chunk, onFlushed) => send(2 * index, chunk, onFlushed),
      end: () => {}, // v4 has no per-channel close; the WebSocket closes once every port is done
      error: (text) => send(2 * index + 1, Buffer.from(text)),
      finish: () => {
        open--
        if (open === 0 && ws.readyState === ws.OPEN) ws.close(1000)
      },
    })
  })
  ws.on('message', (raw, isBinary) => {
    link.touch()
    const message = rawDataToBuffer(raw)
    let channel: number
    let payload: Buffer
    if (isBinary) {
      if (message.length === 0) return
      channel = message[0]!
      payload = message.subarray(1)
    } else {
      const text = message.toString('latin1')
      if (text.length === 0) return
      channel = text.charCodeAt(0) - 48
      payload = Buffer.from(text.slice(1), 'base64')
    }
    // Only the even (data) channels are readable; wsstream drops anything else.
    if (channel % 2 !== 0 || payload.length === 0) return
    forwards[channel / 2]?.clientData(payload)
  })
  // v4 clients cannot half-close a channel: the WebSocket closing is the end of every forward.
  ws.on('close', () => {
    for (const forward of forwards) forward.abort()
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Forwarding one TCP connection to the pod
// ---------------------------------------------------------------------------------------------------------------

/** How a forward talks back to its client; everything here is called through the link's delay queue. */
interface ForwardSinks {
  data(chunk: Buffer, onFlushed?: () => void): void
  /** The pod finished sending. */
  end(): void
  error(text: string): void
  /** The forward is over (always called once, last). */
  finish(): void
}

interface Forward {
  clientData(chunk: Buffer): void
  /** The client half-closed its side. */
  clientEnd(): void
  /** The client went away: drop the pod connection. */
  abort(): void
}

/**
 * What the kubelet's `PortForward` does for one connection: dial the pod port (the container runtime does it in
 * the pod's network namespace; here `runtime.dial`) and copy both ways. Failures are reported as text on the
 * error side, worded exactly as the kubelet words them.
 */
function startForward(link: ClientLink, port: number, sinks: ForwardSinks): Forward {
  const { target } = link
  let pod: Socket | undefined
  /** Client bytes (null: its FIN) that arrive while the dial is in flight. */
  let backlog: Array<Buffer | null> = []
  let finished = false

  const finish = (): void => {
    if (finished) return
    finished = true
    // The runtime closes the pod connection as soon as either direction is done (containerd gives the other
    // direction up to 1 s; nothing here needs that grace), so late client bytes are dropped, as there.
    pod?.destroy()
    link.toClient.run(() => sinks.finish())
  }
  const report = (error: Error): void => {
    const text = `error forwarding port ${port} to pod ${target.podName}, uid ${target.podUid}: ${error.message}`
    link.toClient.run(() => sinks.error(text))
  }

  target.runtime.dial(port).then(
    (socket) => {
      if (finished) {
        socket.destroy()
        return
      }
      pod = socket
      socket.setNoDelay(true)
      socket.on('data', (chunk: Buffer) => link.toClient.run(() => link.deliver(chunk, sinks.data)))
      socket.on('end', () => {
        link.toClient.run(() => sinks.end())
        finish()
      })
      socket.on('error', (error) => {
        if (finished) return
        report(error)
        finish()
      })
      socket.on('close', finish)
      for (const item of backlog) {
        if (item === null) socket.end()
        else socket.write(item)
      }
      backlog = []
    },
    (error: Error) => {
      if (finished) return
      report(error)
      finish()
    },
  )

  return {
    clientData: (chunk) =>
      link.toPod.run(() => {
        if (finished) return
        if (pod) pod.write(chunk)
        else backlog.push(chunk)
      }),
    clientEnd: () =>
      link.toPod.run(() => {
        if (finished) return
        if (pod) pod.end()
        else backlog.push(null)
      }),
    abort: finish,
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The client connection and its faults
// ---------------------------------------------------------------------------------------------------------------

let nextLinkId = 1

/** One upgraded client connection: its registry entry, and where StreamFaults are applied. */
class ClientLink implements PortForwardConnection {
  readonly id = nextLinkId++
  readonly closed: Promise<void>
  /** Everything sent towards the client (payload, FINs, error text) goes through here, in order. */
  readonly toClient: DelayQueue
  /** Everything sent towards the pod goes through here, in order. */
  readonly toPod: DelayQueue
  private resolveClosed: () => void = () => {}
  private isClosed = false
  private bytesToClient = 0
  private dropping = false
  private lastActivity = Date.now()
  private watchdog: NodeJS.Timeout | undefined

  constructor(
    readonly target: PodStreamTarget,
    readonly protocol: PortForwardProtocol,
    private readonly faultSource: FaultSource,
    private kill: () => void,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve
    })
    this.toClient = new DelayQueue(() => this.faults.delayMs ?? 0)
    this.toPod = new DelayQueue(() => this.faults.delayMs ?? 0)
    this.watchIdle()
  }

  private get faults(): StreamFaults {
    return typeof this.faultSource === 'function' ? this.faultSource() : this.faultSource
  }

  /** Switches from destroying the raw socket to terminating the WebSocket once there is one. */
  setKill(kill: () => void): void {
    this.kill = kill
  }

  /** Bytes moved on the client connection (either way): what a load balancer's idle timer watches. */
  touch(): void {
    this.lastActivity = Date.now()
  }

  /** Sends pod payload to the client, cutting the connection once `dropAfterBytes` have gone out. */
  deliver(chunk: Buffer, write: (chunk: Buffer, onFlushed?: () => void) => void): void {
    if (this.dropping || this.isClosed) return
    const limit = this.faults.dropAfterBytes
    if (limit === undefined || this.bytesToClient + chunk.length < limit) {
      this.bytesToClient += chunk.length
      write(chunk)
      return
    }
    const room = Math.max(0, limit - this.bytesToClient)
    this.bytesToClient += room
    this.dropping = true
    // Destroy only once the last allowed bytes are on the wire, so the client sees exactly `limit` bytes.
    if (room === 0) this.destroy()
    else write(chunk.subarray(0, room), () => this.destroy())
  }

  destroy(): void {
    if (this.isClosed) return
    this.kill()
  }

  /** Called by the transport's close event. */
  markClosed(): void {
    if (this.isClosed) return
    this.isClosed = true
    clearTimeout(this.watchdog)
    this.toClient.stop()
    this.toPod.stop()
    this.resolveClosed()
  }

  // Polls rather than re-arming on every byte: cheap, and it notices idleTimeoutMs being set or changed later.
  private watchIdle(): void {
    if (this.isClosed) return
    const idleMs = this.faults.idleTimeoutMs
    let wait = FAULT_POLL_MS
    if (idleMs !== undefined && idleMs > 0) {
      const remaining = this.lastActivity + idleMs - Date.now()
      if (remaining <= 0) {
        this.destroy()
        return
      }
      wait = Math.min(remaining, FAULT_POLL_MS)
    }
    this.watchdog = setTimeout(() => this.watchIdle(), wait)
    this.watchdog.unref()
  }
}

/**
 * Runs tasks after `delayMs` (read per task), never out of order: a task waits for the ones queued before it
 * even if the delay has been lowered in between. With no delay and nothing queued, a task runs at once.
 */
class DelayQueue {
  private readonly pending: Array<{ due: number; task: () => void }> = []
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(private readonly delayMs: () => number) {}

  run(task: () => void): void {
    if (this.stopped) return
    const delay = this.delayMs()
    if (delay <= 0 && this.pending.length === 0) {
      task()
      return
    }
    const previous = this.pending.at(-1)?.due ?? 0
    this.pending.push({ due: Math.max(Date.now() + Math.max(0, delay), previous), task })
    this.schedule()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.pending.length = 0
  }

  private schedule(): void {
    const next = this.pending[0]
    if (this.timer || !next) return
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        while (!this.stopped && this.pending.length > 0 && this.pending[0]!.due <= Date.now()) {
          this.pending.shift()!.task()
        }
        this.schedule()
      },
      Math.max(0, next.due - Date.now()),
    )
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------------------------

/**
 * `?ports=22&ports=80` or `?ports=22,80`. The API server converts each value with ParseUint(…, 10, 16), so its
 * messages are reproduced; port 0 passes that and is refused by the kubelet. Returns an error message instead.
 */
export function parsePortsQuery(url: string): number[] | string {
  const values = new URL(url, 'http://sandbox').searchParams.getAll('ports')
  if (values.length === 0) return 'query parameter "port" is required'
  const ports: number[] = []
  for (const value of values) {
    for (const item of value.split(',')) {
      const port = parsePort(item)
      if (typeof port === 'string') return `cannot convert to []int32: ${port}`
      if (port < 1) return `port "${value}" must be > 0`
      ports.push(port)
    }
  }
  return ports
}

/** Go's strconv.ParseUint(text, 10, 16), returning its error text on failure. */
function parsePort(text: string): number | string {
  if (!/^[0-9]+$/.test(text)) return `strconv.ParseUint: parsing ${JSON.stringify(text)}: invalid syntax`
  const value = Number(text)
  if (value > 0xffff) return `strconv.ParseUint: parsing ${JSON.stringify(text)}: value out of range`
  return value
}

function parseProtocolList(header: string | undefined): string[] {
  if (!header) return []
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
}

function rawDataToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}

/** Answers a refused upgrade with a `Status`, as the API server does before any upgrade. */
function rejectWithStatus(socket: Duplex, code: number, reason: string, message: string): void {
  const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }
  writeResponse(socket, code, { 'Content-Type': 'application/json', body: JSON.stringify(status) })
}

function writeResponse(socket: Duplex, code: number, fields: Record<string, string> & { body: string }): void {
  const { body, ...headers } = fields
  const lines = [`HTTP/1.1 ${code} ${STATUS_CODES[code] ?? ''}`]
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', '', body)
  socket.on('error', () => {})
  socket.end(lines.join('\r\n'), () => socket.destroy())
}
