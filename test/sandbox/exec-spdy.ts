/**
 * Exec over SPDY/3.1: kubectl's fallback when the WebSocket upgrade fails, and its only transport with
 * KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false (spec: /work/shared/reference/kubernetes-streaming-protocols.md §5).
 *
 * The API server does not speak this protocol itself: it proxies the upgrade to the kubelet, so what the client sees
 * is the kubelet's `remotecommand` server (pkg/kubelet/cri/streaming/remotecommand/httpstream.go) on top of
 * containerd. This file reproduces that pair:
 *
 * 1. Handshake (apimachinery httpstream.Handshake): the client's `X-Stream-Protocol-Version` values (repeated header
 *    lines and comma-separated lists alike), the first one in the client's order that the kubelet speaks (v4, v3,
 *    v2, channel.k8s.io). None offered: 400 in plain text. None in common: 403 with one
 *    `X-Accepted-Stream-Protocol-Versions` line per version, in plain text. Otherwise 101 with `Connection: Upgrade`,
 *    `Upgrade: SPDY/3.1` and the chosen version, then silence until the client's first frame.
 * 2. Streams: the client opens one SPDY stream per channel, named by its `streamtype` header (error, stdin, stdout,
 *    stderr, and resize from v3 on). Each gets a SYN_REPLY; the command starts once `1 + stdin + stdout + stderr +
 *    (tty ? 1 : 0)` known streams have arrived (the kubelet waits up to 30 s, then gives up). Payloads are raw bytes.
 * 3. The session: stdin bytes go to the process, FIN on stdin is EOF, resize JSON (`{"Width":…,"Height":…}`, as
 *    Go's json.Decoder reads it) resizes the terminal, output goes out on stdout and stderr.
 * 4. The end: stdout and stderr are FINned once drained (containerd closes them), the status goes on the error
 *    stream (v4: a JSON metav1.Status whose `ExitCode` cause carries the exit code; v1–v3: the message text, and
 *    nothing on success), and the error stream is FINned. The client then resets its streams, sends GOAWAY and
 *    closes; the server answers with its own GOAWAY and closes its side.
 *
 * Where the sandbox departs from the kubelet, deliberately: the kubelet resets every stream and closes the TCP
 * connection straight after writing the status. Closing a socket that still has unread client frames (a ping, a
 * reset) makes the kernel send RST, and the client then loses whatever output it had not read yet; so the sandbox
 * half-closes the streams and lets the client close first (it always does), with a timeout as a backstop. The client
 * sees the same streams, data and status either way.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { PodProcess, PodStreamTarget, StreamFaults } from './contracts.js'
import { type ExecRequest, ResizeDecoder } from './exec.js'
import { SpdySession, type SpdyStream } from './spdy.js'

/** What the kubelet accepts (remotecommand.SupportedStreamingProtocols), in its order. */
export const SPDY_EXEC_PROTOCOLS = [
  'v4.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
  'channel.k8s.io',
] as const
export type SpdyExecProtocol = (typeof SPDY_EXEC_PROTOCOLS)[number]

export interface SpdyExecOptions {
  /** How long the client has to open its streams (default 30 s, the kubelet's streamCreationTimeout). */
  streamCreationTimeoutMs?: number
  /** How long, once the status is out, the client has to close the connection before it is closed for it. */
  clientCloseTimeoutMs?: number
}

const STREAM_CREATION_TIMEOUT_MS = 30_000
const CLIENT_CLOSE_TIMEOUT_MS = 30_000
/** Stop reading the process while this much output is waiting in the socket (the client reads slower). */
const OUTPUT_HIGH_WATER_BYTES = 4 * 1024 * 1024

type StreamType = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize'

/** True for an upgrade to SPDY/3.1 (what kubectl's SPDY executor sends with POST). */
export function isSpdyUpgrade(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').split(',').some((token) => token.trim().toLowerCase() === 'spdy/3.1')
}

/** httpstream.Handshake's reading of the header: every line, each split on commas. */
export function offeredStreamProtocols(req: IncomingMessage): string[] {
  return (req.headersDistinct['x-stream-protocol-version'] ?? [])
    .flatMap((line) => line.split(','))
    .map((protocol) => protocol.trim())
    .filter((protocol) => protocol !== '')
}

/**
 * Serves an exec request that the caller has already authenticated, authorised and validated (pod, container,
 * command, stream flags), on a connection asking to upgrade to SPDY/3.1.
 */
export function serveSpdyExec(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  request: ExecRequest,
  target: PodStreamTarget,
  faults: StreamFaults,
  options: SpdyExecOptions = {},
): void {
  const offered = offeredStreamProtocols(req)
  if (offered.length === 0) {
    writePlainError(socket, 400, [], 'unable to upgrade: X-Stream-Protocol-Version is required')
    return
  }
  const protocol = offered.find((candidate): candidate is SpdyExecProtocol =>
    (SPDY_EXEC_PROTOCOLS as readonly string[]).includes(candidate),
  )
  if (protocol === undefined) {
    const message = `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server accepts [${SPDY_EXEC_PROTOCOLS.join(' ')}]`
    // Handshake answers with http.Error(403); the kubelet then calls http.Error(400) on the same response, whose
    // status line is already out, so only the text is added: the body holds the message twice.
    writePlainError(
      socket,
      403,
      SPDY_EXEC_PROTOCOLS.map((version) => ['X-Accepted-Stream-Protocol-Versions', version]),
      message,
      `${message}\n`,
    )
    return
  }

  // The upgraded connection is a TLS (or TCP) socket; both have these.
  const raw = socket as Duplex & {
    setNoDelay?: (noDelay: boolean) => void
    setTimeout?: (ms: number, onTimeout: () => void) => void
  }
  raw.setNoDelay?.(true)
  socket.on('error', () => {}) // 'close' follows and does the cleanup
  // Nothing may follow the 101 before the client's first frame: kubectl reads the response through a bufio.Reader
  // and then hands the raw connection to spdystream, so early bytes could be swallowed.
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\n' +
      'Connection: Upgrade\r\n' +
      'Upgrade: SPDY/3.1\r\n' +
      `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
  )
  if (faults.idleTimeoutMs) {
    // A load balancer's idle timeout: any byte either way (kubectl's SPDY pings included) counts as activity.
    raw.setTimeout?.(faults.idleTimeoutMs, () => socket.destroy())
  }
  const session = new SpdySession({
    write: (chunk, onFlushed) => {
      if (socket.writable) socket.write(chunk, onFlushed && (() => onFlushed()))
      else onFlushed?.()
    },
    end: () => socket.end(),
    destroy: () => socket.destroy(),
  })
  new SpdyExecSession(session, socket, protocol, request, target, faults, options)
  socket.on('data', (chunk: Buffer) => session.receive(chunk))
  socket.on('end', () => session.end()) // the client is done (kubectl closes right after its GOAWAY)
  socket.on('close', () => session.transportClosed())
  if (head.length > 0) session.receive(head)
}

/** One exec over one SPDY connection: collects the streams, runs the command, reports its status. */
class SpdyExecSession {
  private readonly streams: Partial<Record<StreamType, SpdyStream>> = {}
  /** What the client sends on stdin and resize before the command starts waits here, as in spdystream's buffers. */
  private readonly inputs = new Map<SpdyStream, HeldInput>()
  private readonly expectedStreams: number
  private receivedStreams = 0
  private started = false
  private process: PodProcess | undefined
  private readonly creationTimer: NodeJS.Timeout
  private closeTimer: NodeJS.Timeout | undefined
  /** Output to the client goes out in order, through the faults (delay, drop). */
  private pending: Promise<void> = Promise.resolve()
  private sentBytes = 0

  constructor(
    private readonly session: SpdySession,
    private readonly socket: Duplex,
    private readonly protocol: SpdyExecProtocol,
    private readonly request: ExecRequest,
    private readonly target: PodStreamTarget,
    private readonly faults: StreamFaults,
    private readonly options: SpdyExecOptions,
  ) {
    this.expectedStreams =
      1 +
      Number(request.stdin) +
      Number(request.stdout) +
      Number(request.stderr) +
      Number(request.tty && this.supportsResize)
    this.creationTimer = setTimeout(() => {
      // "timed out waiting for client to create streams": the kubelet logs it and gives the session up.
      if (!this.started) session.destroy()
    }, options.streamCreationTimeoutMs ?? STREAM_CREATION_TIMEOUT_MS)
    session.on('stream', (stream) => this.onStream(stream))
    session.on('close', () => this.onSessionClosed())
  }

  private get supportsResize(): boolean {
    return this.protocol === 'v4.channel.k8s.io' || this.protocol === 'v3.channel.k8s.io'
  }

  private onStream(stream: SpdyStream): void {
    // The kubelet's upgrader replies to every stream, known or not, before handing it over.
    stream.reply()
    if (this.started) return // the kubelet no longer listens for streams once the command runs
    const type = stream.header('streamtype')
    const known: readonly string[] = this.supportsResize
      ? ['error', 'stdin', 'stdout', 'stderr', 'resize']
      : ['error', 'stdin', 'stdout', 'stderr']
    if (type === undefined || !known.includes(type)) return // "unexpected stream type": not counted
    // A second stream of a type replaces the first, and counts, as in the kubelet's waitForStreams.
    this.streams[type as StreamType] = stream
    if (type === 'stdin' || type === 'resize') this.inputs.set(stream, new HeldInput(stream))
    this.receivedStreams++
    if (this.receivedStreams === this.expectedStreams) this.start()
  }

  private start(): void {
    this.started = true
    clearTimeout(this.creationTimer)
    const { streams, request } = this
    if (this.protocol === 'channel.k8s.io') {
      // The 1.0 protocol, kept as the kubelet keeps it: the error stream is reset as soon as the streams are in
      // (so a v1 client never sees a status), and the server half-closes stdin.
      streams.error?.reset()
      streams.stdin?.end()
    }
    let process: PodProcess
    try {
      process = this.target.runtime.exec(request.command, { tty: request.tty, cols: 80, rows: 24 })
    } catch (error) {
      const message = `error executing command in container: ${error instanceof Error ? error.message : String(error)}`
      this.finish(internalErrorStatus(message))
      return
    }
    this.process = process

    this.pipeOutput(process.stdout, streams.stdout)
    if (process.stderr) this.pipeOutput(process.stderr, streams.stderr)

    const stdin = streams.stdin && this.inputs.get(streams.stdin)
    if (request.stdin && stdin) {
      stdin.attach(
        (chunk) => {
          if (process.stdin.destroyed || process.stdin.writableEnded) return
          if (!process.stdin.write(chunk)) {
            // The process is not keeping up: stop reading the connection until it does (as the kubelet's copy would).
            this.socket.pause()
            process.stdin.once('drain', () => this.socket.resume())
          }
        },
        () => {
          if (!process.stdin.writableEnded) process.stdin.end()
        },
      )
    } else {
      process.stdin.end()
    }

    const resize = streams.resize && this.inputs.get(streams.resize)
    if (resize) {
      const decoder = new ResizeDecoder((size) => process.resize(size.width, size.height))
      resize.attach(
        (chunk) => decoder.push(chunk.toString('utf8')),
        () => {},
      )
    }

    void process.exited.then(({ code, signal }) => {
      const exitCode = code ?? (signal ? 128 + signalNumber(signal) : 1)
      this.finish(exitCode === 0 ? successStatus() : exitStatus(request.command, exitCode))
    })
  }

  private pipeOutput(output: NodeJS.ReadableStream, stream: SpdyStream | undefined): void {
    output.on('data', (chunk: Buffer) => {
      if (!stream) return // output the client did not ask for is dropped
      this.send(stream, chunk)
      const writable = this.socket as Duplex & { writableLength: number }
      if (writable.writableLength > OUTPUT_HIGH_WATER_BYTES) {
        output.pause()
        this.socket.once('drain', () => output.resume())
      }
    })
  }

  /** Queues `payload` for the client on `stream`, applying the delay and drop faults. */
  private send(stream: SpdyStream, payload: Buffer): Promise<void> {
    this.pending = this.pending.then(async () => {
      if (this.faults.delayMs) await new Promise((resolve) => setTimeout(resolve, this.faults.delayMs))
      const limit = this.faults.dropAfterBytes
      if (limit !== undefined && this.sentBytes + payload.length >= limit) {
        const room = Math.max(0, limit - this.sentBytes)
        this.sentBytes += room
        await new Promise<void>((resolve) => stream.write(payload.subarray(0, room), resolve))
        this.socket.destroy()
        return
      }
      this.sentBytes += payload.length
      await new Promise<void>((resolve) => stream.write(payload, resolve))
    })
    return this.pending
  }

  /** After the command: close the output streams, write the status, close the error stream, await the client. */
  private finish(status: ExecStatus): void {
    void this.pending.then(() => {
      const { streams } = this
      streams.stdout?.end()
      streams.stderr?.end()
      const text = this.protocol === 'v4.channel.k8s.io' ? JSON.stringify(status) : v1StatusText(status)
      if (streams.error && !streams.error.closed) {
        if (text !== '') streams.error.write(Buffer.from(text))
        streams.error.end()
      }
      // The client closes the connection once it has read everything; a client that never does is cut off.
      this.closeTimer = setTimeout(
        () => this.session.end(),
        this.options.clientCloseTimeoutMs ?? CLIENT_CLOSE_TIMEOUT_MS,
      )
      this.closeTimer.unref()
    })
  }

  private onSessionClosed(): void {
    clearTimeout(this.creationTimer)
    clearTimeout(this.closeTimer)
    const process = this.process
    if (!process) return
    // The client went away: like a kubelet whose streams broke, stop feeding the process. A TTY session's shell
    // gets a hangup when its terminal goes; a non-TTY process sees EOF.
    if (!process.stdin.writableEnded) process.stdin.end()
    if (this.request.tty) process.kill('SIGHUP')
  }
}

/** A client stream's input, held from the moment the stream arrives until something reads it. */
class HeldInput {
  private held: Buffer[] = []
  private ended = false
  private onData: ((chunk: Buffer) => void) | undefined
  private onEnd: (() => void) | undefined

  constructor(stream: SpdyStream) {
    stream.on('data', (chunk) => (this.onData ? this.onData(chunk) : this.held.push(chunk)))
    // FIN and RST both end the input (a reset stream delivers nothing more).
    const end = () => {
      if (this.ended) return
      this.ended = true
      this.onEnd?.()
    }
    stream.on('end', end)
    stream.on('reset', end)
  }

  attach(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    this.onData = onData
    this.onEnd = onEnd
    for (const chunk of this.held) onData(chunk)
    this.held = []
    if (this.ended) onEnd()
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Status payloads (remotecommand/exec.go ServeExec, with containerd's exit error)
// ---------------------------------------------------------------------------------------------------------------

interface ExecStatus {
  metadata: Record<string, never>
  status: 'Success' | 'Failure'
  message?: string
  reason?: string
  details?: { causes: { reason?: string; message: string }[] }
  code?: number
}

function successStatus(): ExecStatus {
  return { metadata: {}, status: 'Success' }
}

/**
 * A non-zero exit, as the kubelet wraps containerd's `CodeExitError` ("error executing command %v, exit code %d",
 * with Go's %v of the argv slice). The client only reads the `ExitCode` cause.
 */
export function exitStatus(command: string[], exitCode: number): ExecStatus {
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  }
}

function internalErrorStatus(cause: string): ExecStatus {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${cause}`,
    reason: 'InternalError',
    details: { causes: [{ message: cause }] },
    code: 500,
  }
}

/** v1WriteStatusFunc: nothing on success, the message (StatusError.Error()) otherwise. */
function v1StatusText(status: ExecStatus): string {
  return status.status === 'Success' ? '' : (status.message ?? '')
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13 }
function signalNumber(signal: string): number {
  return signalNumbers[signal] ?? 0
}

// ---------------------------------------------------------------------------------------------------------------
// Plain-text refusals (Go's http.Error)
// ---------------------------------------------------------------------------------------------------------------

function writePlainError(
  socket: Duplex,
  code: 400 | 403,
  extraHeaders: string[][],
  message: string,
  appended = '',
): void {
  const body = `${message}\n${appended}`
  const lines = [
    `HTTP/1.1 ${code} ${code === 400 ? 'Bad Request' : 'Forbidden'}`,
    'Content-Type: text/plain; charset=utf-8',
    'X-Content-Type-Options: nosniff',
    ...extraHeaders.map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ]
  socket.on('error', () => {})
  socket.end(lines.join('\r\n'), () => socket.destroy())
}
