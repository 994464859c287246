/**
 * A process in the management container through the Docker Engine API, as a RemoteSession: create the exec, start it
 * with the connection hijack, then the connection is the process's terminal (raw, with a TTY) or its stdout and
 * stderr multiplexed in stdcopy frames (without). Our end of input is a half-close of the connection (what the
 * engine passes on as EOF); resizes are `POST /exec/{id}/resize`; the exit status is `GET /exec/{id}/json` once the
 * stream has ended, as the docker CLI reads it — but unlike the CLI (which exits 0 when the stream drops), a stream
 * that ends while the process still runs, in the middle of a frame, or with a connection error is a lost connection,
 * never a success. Keepalive is TCP's: there is no protocol-level ping on a hijacked stream.
 */
import type { Socket } from 'node:net'
import { PassThrough, type Readable, Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../log.js'
import type { RemoteSession, SessionEnd, TerminalSize } from '../session/remote-session.js'
import { CONSOLE_SIZE_API_VERSION, type EngineClient } from './engine-client.js'

export interface DockerExecOptions {
  argv: string[]
  tty: boolean
  /** The terminal's size when the process starts (TTY only). */
  initialSize?: TerminalSize | undefined
  workingDir?: string
  env?: string[]
  /** TCP keepalive on the stream's connection (0: none). */
  keepaliveMs?: number
  logger: Logger
}

interface ExecInspect {
  Running?: boolean
  ExitCode?: number | null
}

/** Creates and starts an exec in `container` (its name or id) and returns it as a RemoteSession. */
export async function openDockerExec(
  engine: EngineClient,
  container: string,
  options: DockerExecOptions,
): Promise<RemoteSession> {
  const size = options.tty ? options.initialSize : undefined
  // [height, width], as the API carries it; older engines get a resize right after the start instead.
  const consoleSize = size && engine.supports(CONSOLE_SIZE_API_VERSION) ? [size.rows, size.cols] : undefined
  const created = await engine.request<{ Id: string }>('POST', `/containers/${encodeURIComponent(container)}/exec`, {
    body: {
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: options.tty,
      ...(consoleSize ? { ConsoleSize: consoleSize } : {}),
      ...(options.workingDir ? { WorkingDir: options.workingDir } : {}),
      ...(options.env && options.env.length > 0 ? { Env: options.env } : {}),
      Cmd: options.argv,
    },
  })
  const id = created.Id
  const socket = await engine.hijack(`/exec/${id}/start`, {
    Detach: false,
    Tty: options.tty,
    ...(consoleSize ? { ConsoleSize: consoleSize } : {}),
  })
  options.logger.debug(`docker exec ${id.slice(0, 12)} in ${container}: ${options.tty ? 'raw (TTY)' : 'multiplexed'}`)
  socket.setNoDelay?.(true)
  if (options.keepaliveMs && options.keepaliveMs > 0) socket.setKeepAlive?.(true, options.keepaliveMs)
  const session = execSession(engine, id, socket, options.tty, options.logger)
  if (size && !consoleSize) session.resize(size)
  return session
}

function execSession(engine: EngineClient, id: string, socket: Socket, tty: boolean, logger: Logger): RemoteSession {
  const stdout = new PassThrough({ highWaterMark: 256 * 1024 })
  const stderr = tty ? undefined : new PassThrough({ highWaterMark: 256 * 1024 })
  let aborted: string | undefined
  let socketError: Error | undefined

  const pauseUntilDrained = (target: PassThrough) => {
    socket.pause()
    target.once('drain', () => socket.resume())
  }
  const demux = tty ? undefined : new StdcopyDemuxer()
  socket.on('data', (chunk: Buffer) => {
    if (!demux) {
      if (!stdout.write(chunk)) pauseUntilDrained(stdout)
      return
    }
    for (const frame of demux.push(chunk)) {
      // stdin (0) never comes back; anything but stderr is output, as stdcopy treats it.
      const target = frame.stream === 2 && stderr ? stderr : stdout
      if (!target.write(frame.payload)) pauseUntilDrained(target)
    }
  })
  socket.on('error', (error) => {
    socketError ??= error
  })
  // Node leaves an upgraded connection paused: nothing flows until we ask.
  socket.resume()

  const stdin = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      if (socket.destroyed || socket.writableEnded) {
        callback(new Error('the connection to the container is closed'))
        return
      }
      // Acknowledged once handed to the kernel: our backpressure.
      socket.write(chunk, (error) => callback(error ?? null))
    },
    final(callback) {
      // The half-close: the engine closes the process's stdin, and we go on reading its output.
      if (!socket.destroyed && !socket.writableEnded) socket.end()
      callback()
    },
  })
  stdin.on('error', () => {})

  const streamEnded = new Promise<void>((resolve) => {
    socket.once('close', () => resolve())
  })

  const ended = streamEnded.then(async (): Promise<SessionEnd> => {
    const cutFrame = demux?.pending ?? false
    stdout.end()
    stderr?.end()
    if (!stdin.writableEnded) stdin.destroy()
    if (aborted !== undefined) return { kind: 'aborted', reason: aborted }
    if (socketError) {
      logger.debug(`docker exec ${id.slice(0, 12)}: ${socketError.message}`)
      return { kind: 'lost', reason: 'the connection to the container was lost' }
    }
    if (cutFrame)
      return { kind: 'lost', reason: 'the connection to the container was lost in the middle of the output' }
    return exitStatus(engine, id, logger)
  })

  return {
    stdout: stdout as Readable,
    stderr,
    stdin,
    resize(size) {
      if (!tty) return
      void engine
        .request('POST', `/exec/${id}/resize`, { query: { h: size.rows, w: size.cols } })
        .catch((error: Error) => logger.debug(`docker exec resize failed: ${error.message}`))
    },
    ended,
    abort(reason) {
      if (aborted !== undefined) return
      aborted = reason
      socket.destroy()
    },
  }
}

/**
 * The exit code, once the stream has ended. dockerd records it before it closes the streams, so one look is normally
 * enough; a few more cover an engine that is slower to update than to close. Still running, or no code: lost.
 */
async function exitStatus(engine: EngineClient, id: string, logger: Logger): Promise<SessionEnd> {
  for (const pauseMs of [0, 50, 100, 200]) {
    if (pauseMs > 0) await sleep(pauseMs)
    let inspected: ExecInspect
    try {
      inspected = await engine.request<ExecInspect>('GET', `/exec/${id}/json`)
    } catch (error) {
      logger.debug(`docker exec inspect failed: ${(error as Error).message}`)
      return { kind: 'lost', reason: 'the connection to the Docker engine was lost before the exit status arrived' }
    }
    if (inspected.Running === false && typeof inspected.ExitCode === 'number') {
      return { kind: 'exit', code: inspected.ExitCode }
    }
  }
  return { kind: 'lost', reason: 'the connection to the container was lost while the command was still running' }
}

/**
 * stdcopy (moby pkg/stdcopy): frames of [stream type, 0, 0, 0, big-endian uint32 size] + payload. Keeps a partial
 * frame across chunks; `pending` says that the stream stopped in the middle of one.
 */
export class StdcopyDemuxer {
  private buffered: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): { stream: number; payload: Buffer }[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const frames: { stream: number; payload: Buffer }[] = []
    let offset = 0
    while (this.buffered.length - offset >= 8) {
      const size = this.buffered.readUInt32BE(offset + 4)
      if (this.buffered.length - offset - 8 < size) break
      const payload = this.buffered.subarray(offset + 8, offset + 8 + size)
      if (size > 0) frames.push({ stream: this.buffered[offset]!, payload })
      offset += 8 + size
    }
    this.buffered = offset === 0 ? this.buffered : this.buffered.subarray(offset)
    return frames
  }

  get pending(): boolean {
    return this.buffered.length > 0
  }
}
