/**
 * Exec over WebSocket, as the API server (v5, through its stream translator) and the kubelet (v4 and older) serve
 * it: binary messages whose first byte is the channel, an empty "connection established" message, stdin half-close
 * with [255, 0] on v5, resize JSON on channel 4, exactly one status message on channel 3, then close 1000.
 * See kubernetes-streaming-protocols.md §4.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket, WebSocketServer } from 'ws'
import type { PodProcess, PodStreamTarget, StreamFaults } from './contracts.js'
import { badRequest } from './status.js'

export interface ExecRequest {
  command: string[]
  container: string | undefined
  stdin: boolean
  stdout: boolean
  stderr: boolean
  tty: boolean
}

const channel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const

/** Query booleans as the API server's codec reads them: `true`/`1` are true; presence alone is not. */
function queryBoolean(query: URLSearchParams, name: string): boolean {
  const value = query.get(name)
  return value === 'true' || value === '1' || value === 'True' || value === 'TRUE'
}

export function parseExecRequest(query: URLSearchParams): ExecRequest {
  const request: ExecRequest = {
    command: query.getAll('command'),
    container: query.get('container') ?? undefined,
    stdin: queryBoolean(query, 'stdin'),
    stdout: queryBoolean(query, 'stdout'),
    stderr: queryBoolean(query, 'stderr'),
    tty: queryBoolean(query, 'tty'),
  }
  if (request.command.length === 0) throw badRequest('you must specify at least one command for the container')
  if (!request.stdin && !request.stdout && !request.stderr) {
    throw badRequest('you must specify at least 1 of stdin, stdout, stderr')
  }
  // With a TTY the kubelet merges stderr into the terminal; a client asking for both gets stderr=false.
  if (request.tty && request.stderr) request.stderr = false
  return request
}

/** Subprotocols in the order the sandbox prefers them when the client offers v5 (the 1.30+ translator path). */
export type ExecProtocolSupport = 'v5' | 'v4-only'

const kubeletProtocols = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io']

/**
 * Chooses the subprotocol like a 1.32 API server: v5 whenever offered (the stream translator), otherwise the first
 * protocol in the client's order that the kubelet supports. An empty offer means plain `channel.k8s.io`.
 */
export function negotiateExecProtocol(offered: string[], support: ExecProtocolSupport): string | undefined {
  if (offered.length === 0) return ''
  if (support === 'v5' && offered.includes('v5.channel.k8s.io')) return 'v5.channel.k8s.io'
  return offered.find((protocol) => kubeletProtocols.includes(protocol))
}

export function offeredProtocols(req: IncomingMessage): string[] {
  const header = req.headers['sec-websocket-protocol']
  if (!header) return []
  return header
    .split(',')
    .map((protocol) => protocol.trim())
    .filter(Boolean)
}

/**
 * Runs an exec session on an upgraded connection. The caller has validated the request (pod, container, RBAC) and
 * negotiated `protocol`; `wss` completes the handshake echoing it.
 */
export function serveExec(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  wss: WebSocketServer,
  protocol: string,
  request: ExecRequest,
  target: PodStreamTarget,
  faults: StreamFaults,
): void {
  wss.handleUpgrade(req, socket, head, (ws) => {
    runSession(ws, protocol, request, target, faults)
  })
}

/**
 * The 1.32 API server's stream translator when the kubelet refuses the exec (a container that is not running): the
 * WebSocket is already accepted, so the error becomes an InternalError status on channel 3, then close 1000.
 */
export function serveExecFailure(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  wss: WebSocketServer,
  request: ExecRequest,
  cause: string,
): void {
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send(Buffer.of(request.stdout ? channel.stdout : request.stderr ? channel.stderr : channel.error))
    ws.send(Buffer.concat([Buffer.of(channel.error), Buffer.from(JSON.stringify(internalFailure(cause)))]), () =>
      ws.close(1000),
    )
  })
}

function runSession(
  ws: WebSocket,
  protocol: string,
  request: ExecRequest,
  target: PodStreamTarget,
  faults: StreamFaults,
): void {
  const base64 = protocol.includes('base64')
  const v5 = protocol === 'v5.channel.k8s.io'
  const statusAsJson = protocol.startsWith('v4') || v5
  const rawSocket = (ws as unknown as { _socket: import('node:net').Socket })._socket
  if (faults.idleTimeoutMs) {
    // A load balancer's idle timeout: any byte in either direction (pings included) counts as activity.
    rawSocket.setTimeout(faults.idleTimeoutMs, () => rawSocket.destroy())
  }

  let sentBytes = 0
  let pending = Promise.resolve()
  const send = (channelId: number, payload: Buffer): Promise<void> => {
    const encode = (body: Buffer) =>
      base64
        ? String.fromCharCode(48 + channelId) + body.toString('base64')
        : Buffer.concat([Buffer.from([channelId]), body])
    const write = () =>
      new Promise<void>((resolve) => {
        if (ws.readyState !== ws.OPEN) return resolve()
        // dropAfterBytes: exactly that many payload bytes reach the client, then the connection is cut.
        const limit = faults.dropAfterBytes
        const cut = limit !== undefined && payload.length > 0 && sentBytes + payload.length >= limit
        const body = cut ? payload.subarray(0, Math.max(0, limit - sentBytes)) : payload
        sentBytes += body.length
        if (cut && body.length === 0) {
          rawSocket.destroy()
          return resolve()
        }
        ws.send(encode(body), { binary: !base64 }, () => {
          if (cut) rawSocket.destroy()
          resolve()
        })
      })
    pending = pending.then(async () => {
      if (faults.delayMs) await new Promise((resolve) => setTimeout(resolve, faults.delayMs))
      await write()
    })
    return pending
  }

  // "Send an empty message to the lowest writable channel to notify the client the connection is established."
  void send(request.stdout ? channel.stdout : request.stderr ? channel.stderr : channel.error, Buffer.alloc(0))

  let process: PodProcess
  try {
    process = target.runtime.exec(request.command, { tty: request.tty, cols: 80, rows: 24 })
  } catch (error) {
    void send(channel.error, Buffer.from(JSON.stringify(internalFailure(String(error))))).then(() => ws.close(1000))
    return
  }

  pipeOutput(process.stdout, channel.stdout, request.stdout)
  if (process.stderr) pipeOutput(process.stderr, channel.stderr, request.stderr)

  function pipeOutput(stream: NodeJS.ReadableStream, id: number, wanted: boolean): void {
    stream.on('data', (chunk: Buffer) => {
      if (!wanted) return
      // Backpressure: stop reading the process while the client is behind by more than a few MiB.
      const sent = send(id, chunk)
      if (ws.bufferedAmount > 4 * 1024 * 1024) {
        stream.pause()
        void sent.then(() => stream.resume())
      }
    })
  }

  const resizeDecoder = new ResizeDecoder((size) => process.resize(size.width, size.height))
  ws.on('message', (data: Buffer | string, isBinary: boolean) => {
    const message = isBinary ? (data as Buffer) : decodeBase64Message(data.toString())
    if (message.length === 0) return
    const id = message[0]
    const payload = message.subarray(1)
    if (id === channel.stdin) {
      if (request.stdin && !process.stdin.destroyed && !process.stdin.writableEnded) {
        if (!process.stdin.write(payload)) {
          ws.pause()
          process.stdin.once('drain', () => ws.resume())
        }
      }
    } else if (id === channel.resize) {
      resizeDecoder.push(payload.toString('utf8'))
    } else if (id === channel.close && v5) {
      if (payload.length !== 1) return ws.terminate()
      if (payload[0] === channel.stdin) process.stdin.end()
    }
  })
  if (!request.stdin) process.stdin.end()

  ws.on('close', () => {
    // The client went away: like a kubelet whose stream broke, stop feeding the process. A TTY session's shell
    // gets a hangup when its terminal goes; a non-TTY process sees EOF.
    if (!process.stdin.writableEnded) process.stdin.end()
    if (request.tty) process.kill('SIGHUP')
  })

  void process.exited.then(async ({ code, signal }) => {
    const exitCode = code ?? (signal ? 128 + signalNumber(signal) : 1)
    if (statusAsJson) {
      await send(channel.error, Buffer.from(JSON.stringify(exitStatus(exitCode))))
    } else if (exitCode !== 0) {
      await send(channel.error, Buffer.from(`command terminated with non-zero exit code: exit status ${exitCode}`))
    }
    await pending
    if (ws.readyState === ws.OPEN) ws.close(1000)
  })
}

function decodeBase64Message(text: string): Buffer {
  if (text.length === 0) return Buffer.alloc(0)
  return Buffer.concat([Buffer.from([text.charCodeAt(0) - 48]), Buffer.from(text.slice(1), 'base64')])
}

/** The channel-3 payload: json.Marshal(metav1.Status) with empty TypeMeta, exactly as the 1.32 translator emits. */
export function exitStatus(exitCode: number): Record<string, unknown> {
  if (exitCode === 0) return { metadata: {}, status: 'Success' }
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: command terminated with exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  }
}

function internalFailure(cause: string): Record<string, unknown> {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${cause}`,
    reason: 'InternalError',
    details: { causes: [{ message: cause }] },
    code: 500,
  }
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13 }
function signalNumber(signal: string): number {
  return signalNumbers[signal] ?? 0
}

/**
 * Resize messages: Go's json.Decoder over a stream, so objects may arrive concatenated or split across messages,
 * and field names match case-insensitively (kubectl sends {"Width":…}, client-node {"width":…}).
 */
export class ResizeDecoder {
  private buffer = ''
  constructor(private readonly onSize: (size: { width: number; height: number }) => void) {}

  push(text: string): void {
    this.buffer += text
    for (;;) {
      const start = this.buffer.indexOf('{')
      if (start < 0) {
        this.buffer = ''
        return
      }
      const end = this.buffer.indexOf('}', start)
      if (end < 0) {
        this.buffer = this.buffer.slice(start)
        return
      }
      const objectText = this.buffer.slice(start, end + 1)
      this.buffer = this.buffer.slice(end + 1)
      try {
        const parsed = JSON.parse(objectText) as Record<string, unknown>
        const field = (name: string) =>
          Number(Object.entries(parsed).find(([key]) => key.toLowerCase() === name)?.[1] ?? 0)
        const width = field('width')
        const height = field('height')
        if (width > 0 && height > 0) this.onSize({ width, height })
      } catch {
        // A malformed object is dropped, as the API server's decoder loop would give up on it.
      }
    }
  }
}
