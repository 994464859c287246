/**
 * One TCP connection to a port of the pod, as a Duplex, over the API server's port-forward subresource (plain
 * WebSocket, `v4.channel.k8s.io`: channel 0 data, channel 1 errors, a 2-byte port prefix on each). It is the only
 * tunnel primitive: `ssh` hands it to ssh2 as its socket, `proxy` joins it to stdin/stdout, `forward` makes one per
 * accepted local connection. Unlike client-node's PortForward it ends the stream when the WebSocket closes,
 * applies backpressure both ways, surfaces the kubelet's error text, and pings to outlive idle timeouts.
 */
import { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { AccessError, ExitCode } from '../errors.js'
import type { KubeClient } from '../kube/client.js'
import { openWebSocket } from '../kube/websocket.js'

export interface PodStreamTarget {
  namespace: string
  podName: string
}

export interface PodStreamOptions {
  /** WebSocket ping interval (default 20 s: under the 60 s idle timeout of common load balancers). */
  pingIntervalMs?: number
  /** Gives up the upgrade (e.g. the listener that wanted the stream is closing). */
  signal?: AbortSignal
}

/** Opens a stream to `port` in the pod. Rejects with a mapped AccessError if the upgrade is refused. */
export async function openPodStream(
  client: KubeClient,
  target: PodStreamTarget,
  port: number,
  options: PodStreamOptions = {},
): Promise<PodStream> {
  const path = `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.podName)}/portforward`
  const { ws } = await openWebSocket(client, path, { ports: String(port) }, ['v4.channel.k8s.io'], {
    ...(options.signal ? { signal: options.signal } : {}),
    // Masking (RFC 6455 §5.3) keeps a browser script's chosen bytes from confusing caching proxies that can read
    // them. Inside TLS no proxy can, and our payload is no script's: a zero key makes masking a no-op, which
    // spares a byte-by-byte pass over everything we send (ws has no native masking on Node 20).
    ...(client.serverUrl.protocol === 'https:' ? { generateMask: zeroMask } : {}),
  })
  return new PodStream(ws, target, port, options.pingIntervalMs ?? 20_000)
}

function zeroMask(mask: Buffer): void {
  mask.fill(0)
}

/** Frames up to this size reuse the stream's buffer; bigger ones (rare: a full write queue) get their own. */
const maxReusedFrame = 512 * 1024

const dataChannel = 0
const errorChannel = 1

export class PodStream extends Duplex {
  /** The kubelet's error text, if it sent one (e.g. nothing listens on the port). */
  remoteError: string | undefined
  private readonly prefixPending = new Set([dataChannel, errorChannel])
  /** Reused for every frame we send (see send). */
  private frameBuffer: Buffer = Buffer.alloc(0)
  private readonly pinger: NodeJS.Timeout | undefined
  private lastFrameAt = Date.now()

  constructor(
    private readonly ws: WebSocket,
    readonly target: PodStreamTarget,
    readonly port: number,
    pingIntervalMs: number,
  ) {
    super({ allowHalfOpen: false, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 })
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary))
    ws.on('pong', () => {
      this.lastFrameAt = Date.now()
    })
    ws.on('error', (error: Error) => this.destroy(this.failure(error.message)))
    ws.on('close', (code: number) => this.onClose(code))
    // 0 turns pings off (and with them the detection of a silently dead connection).
    this.pinger =
      pingIntervalMs > 0
        ? setInterval(() => {
            if (Date.now() - this.lastFrameAt > 3 * pingIntervalMs) {
              ws.terminate()
              return
            }
            if (ws.readyState === ws.OPEN) ws.ping()
          }, pingIntervalMs)
        : undefined
    this.pinger?.unref()
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.lastFrameAt = Date.now()
    // Destroyed: nobody reads any more; data still arriving before the close handshake is dropped (pushing it would
    // only pause the socket again, and hide the peer's close frame behind it).
    if (!isBinary || data.length === 0 || this.destroyed) return
    const channel = data[0]!
    let payload = data.subarray(1)
    // The kubelet first writes the port number (2 bytes, little-endian) on each channel; client-node strips it too.
    if (this.prefixPending.has(channel)) {
      this.prefixPending.delete(channel)
      payload = payload.subarray(2)
    }
    if (payload.length === 0) return
    if (channel === dataChannel) {
      if (!this.push(payload)) this.ws.pause()
    } else if (channel === errorChannel) {
      this.remoteError = `${this.remoteError ?? ''}${payload.toString('utf8')}`
    }
  }

  private onClose(code: number): void {
    clearInterval(this.pinger)
    if (this.remoteError) {
      this.destroy(this.failure(this.remoteError.trim()))
      return
    }
    if (code !== 1000 && code !== 1005 && !this.readableEnded) {
      this.destroy(
        this.failure(`the port-forward connection was lost (WebSocket code ${code})`, ExitCode.connectionLost),
      )
      return
    }
    // The remote side ended: end our readable side so that whoever reads (ssh2, a socket) sees EOF.
    this.push(null)
  }

  private failure(message: string, exitCode: number = ExitCode.sshUnreachable): AccessError {
    return new AccessError(`port-forward to ${this.target.podName}:${this.port}: ${message}`, {
      exitCode,
      hint:
        exitCode === ExitCode.sshUnreachable
          ? `is anything listening on port ${this.port} in the pod? (akm-access doctor checks sshd)`
          : 'the pod may have been restarted; run the command again',
    })
  }

  override _read(): void {
    this.ws.resume()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send([chunk], chunk.length, callback)
  }

  /** Whatever queued while the last send was in flight goes out as one frame: one copy, one TLS write. */
  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    let length = 0
    for (const { chunk } of chunks) length += chunk.length
    this.send(
      chunks.map(({ chunk }) => chunk),
      length,
      callback,
    )
  }

  private send(chunks: Buffer[], length: number, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      callback(this.failure('the connection is closed', ExitCode.connectionLost))
      return
    }
    // The channel byte and the data in one buffer: a v4 frame is one message, and ws sends a message as given.
    // One send is in flight at a time (the next waits for this callback), and ws is done with the buffer when it
    // calls back, so one buffer per stream serves every frame: no allocation, no garbage, per chunk.
    if (this.frameBuffer.length < 1 + length) {
      this.frameBuffer = Buffer.allocUnsafeSlow(Math.min(Math.max(1 + length, 64 * 1024 + 1), maxReusedFrame))
    }
    const frame = 1 + length <= this.frameBuffer.length ? this.frameBuffer : Buffer.allocUnsafe(1 + length)
    frame[0] = dataChannel
    let offset = 1
    for (const chunk of chunks) offset += chunk.copy(frame, offset)
    // Acknowledged once written to the socket: meanwhile the next chunks queue up and leave as one frame. (Earlier
    // acknowledgements measured slower: they only move the queue into the socket.)
    this.ws.send(frame.subarray(0, offset), { binary: true }, (error) => callback(error ?? null))
  }

  override _final(callback: (error?: Error | null) => void): void {
    // The v4 protocol cannot half-close a forwarded connection: our end of input ends the connection.
    this.ws.close(1000)
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearInterval(this.pinger)
    const { ws } = this
    if (!error && (ws.readyState === ws.OPEN || ws.readyState === ws.CLOSING)) {
      // A polite close (or the one _final began), but one that cannot hang: the socket may be paused by backpressure
      // that nobody will relieve now, and a paused socket never reads the peer's close frame, so ws would hold the
      // connection (and the process) for its 30 s close timeout. Reading on lets the handshake finish (and spares
      // the peer a reset that could cost it our last bytes); a peer that does not answer is cut after a second.
      if (ws.readyState === ws.OPEN) ws.close(1000)
      ws.resume()
      setTimeout(() => ws.terminate(), 1000).unref()
    } else if (ws.readyState !== ws.CLOSED) {
      ws.terminate()
    }
    callback(error)
  }
}
