/**
 * A TCP stream to a port of the management container (its sshd) without a published port, two ways:
 *   - `address`: a plain connection to the container's address on its network. Only where this machine really is on
 *     that network — a local engine, and the network's gateway is one of this machine's addresses (a Linux bridge
 *     network) — never on Docker Desktop or a remote engine, where the same private address would lead somewhere
 *     else. One round trip, no process in the container: the fast path.
 *   - `exec`: a bridge run inside the container through the Engine API (an exec whose stdin and stdout bash joins to
 *     the container's own address, demultiplexed from stdcopy). Works wherever `docker exec` does (Docker Desktop,
 *     remote engines, `ssh://`), at the cost of an exec and a bash per stream.
 * `auto` tries the address first when it is usable and falls back to the bridge.
 */
import { createConnection, isIPv4, type Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import { Duplex } from 'node:stream'
import type { TargetStream } from '../backend/target.js'
import { AccessError, ExitCode } from '../errors.js'
import type { Logger } from '../log.js'
import type { RemoteSession } from '../session/remote-session.js'
import type { PodStreamTarget } from '../tunnel/pod-stream.js'
import type { ManagementContainer } from './container.js'
import type { EngineClient } from './engine-client.js'
import { openDockerExec } from './exec-session.js'

export type StreamMode = 'auto' | 'address' | 'exec'

export interface ContainerStreamOptions {
  mode: StreamMode
  keepaliveMs?: number | undefined
  logger: Logger
  /** How long the direct connection may take before the bridge is used instead (auto). */
  connectTimeoutMs?: number
}

/** How a stream reached the container, for doctor and --debug. */
export type StreamVia = { kind: 'address'; address: string } | { kind: 'exec'; address: string }

export type ContainerStream = TargetStream & { readonly via: StreamVia }

/**
 * The bridge, `sh -c` first so that an image without bash still says why: $1 address, $2 port, $3 the bash part.
 * Bash can connect (/dev/tcp) but not half-close a socket, so when our input ends (the SSH client is done) sshd gets
 * a few seconds to close its side, then the bridge ends it: otherwise a client that leaves without SSH's disconnect
 * message would leave sshd and the bridge waiting forever.
 */
const BRIDGE_SH = `if command -v bash >/dev/null 2>&1; then exec bash -c "$3" akm-access "$1" "$2"; fi
echo "akm-access: the container has no bash to reach $1:$2" >&2; exit 127`
const BRIDGE_BASH = `{ exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || { echo "akm-access: nothing accepts connections at $1:$2 in the container" >&2; exit 111; }
exec 4<&0
cat <&3 & reader=$!
cat <&4 >&3 & writer=$!
wait -n
if kill -0 "$reader" 2>/dev/null; then
  (sleep 3; kill "$reader") </dev/null >/dev/null 2>&1 & sleeper=$!
  wait "$reader"
  kill "$sleeper" 2>/dev/null
fi
kill "$writer" 2>/dev/null
exit 0`
const CONNECT_REFUSED_EXIT = 111

export async function openContainerStream(
  engine: EngineClient,
  container: ManagementContainer,
  port: number,
  options: ContainerStreamOptions,
): Promise<ContainerStream> {
  const label: PodStreamTarget = { namespace: container.project ?? '', podName: container.name }
  // The address the container is reached at, from outside or from within: its own, or loopback when it has none
  // (network_mode: host).
  const address = container.address ?? '127.0.0.1'
  if (options.mode === 'address' || (options.mode === 'auto' && directlyReachable(engine, container))) {
    try {
      const socket = await connectDirect(address, port, options)
      return Object.assign(socket, { target: label, via: { kind: 'address', address } as StreamVia })
    } catch (error) {
      if (options.mode === 'address') {
        throw new AccessError(
          `cannot connect to ${address}:${port} of container ${container.name}: ${(error as Error).message}`,
          {
            exitCode: ExitCode.sshUnreachable,
            hint: 'is sshd running in the container? Without --docker-stream address, akm-access goes through the Docker engine instead',
          },
        )
      }
      options.logger.debug(`${address}:${port} did not answer (${(error as Error).message}); bridging through an exec`)
    }
  }
  const session = await openDockerExec(engine, container.name, {
    argv: ['sh', '-c', BRIDGE_SH, 'akm-access', address, String(port), BRIDGE_BASH],
    tty: false,
    ...(options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {}),
    logger: options.logger,
  })
  return new ExecBridgeStream(session, label, { kind: 'exec', address }, port, options.logger)
}

/**
 * The container's address leads to it from here only if the engine is local and this machine is on the container's
 * network: its gateway is one of our addresses (the bridge), or the network is loopback.
 */
export function directlyReachable(engine: EngineClient, container: ManagementContainer): boolean {
  const { transport } = engine.endpoint
  const localEngine = transport.kind === 'unix' || (transport.kind === 'tcp' && isLoopback(transport.hostname))
  if (!localEngine || !container.address || !container.gateway) return false
  if (isLoopback(container.gateway)) return true
  return Object.values(networkInterfaces()).some((addresses) =>
    (addresses ?? []).some((entry) => entry.address === container.gateway),
  )
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'))
}

function connectDirect(host: string, port: number, options: ContainerStreamOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer within ${options.connectTimeoutMs ?? 1000} ms`))
    }, options.connectTimeoutMs ?? 1000)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.off('error', reject)
      socket.setNoDelay(true)
      if (options.keepaliveMs) socket.setKeepAlive(true, options.keepaliveMs)
      resolve(socket)
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}

/**
 * The bridge's exec as a Duplex: its stdout is our readable side (with backpressure), our writes are its stdin, our
 * end is its EOF. It ends cleanly only when the bridge exits 0; a bridge that could not connect, or a connection to
 * the engine that broke, destroys it with the reason, so that a reader never takes a failure for sshd's EOF.
 */
class ExecBridgeStream extends Duplex {
  private stderrText = ''

  constructor(
    private readonly session: RemoteSession,
    readonly target: PodStreamTarget,
    readonly via: StreamVia,
    private readonly port: number,
    logger: Logger,
  ) {
    super({ allowHalfOpen: false, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 })
    session.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) session.stdout.pause()
    })
    session.stderr?.on('data', (chunk: Buffer) => {
      if (this.stderrText.length < 4096) this.stderrText += chunk.toString('utf8')
    })
    void session.ended.then((end) => {
      if (this.stderrText) logger.debug(`bridge to ${target.podName}:${port}: ${this.stderrText.trim()}`)
      if (this.destroyed) return
      if (end.kind === 'exit' && end.code === 0) {
        this.push(null)
        return
      }
      if (end.kind === 'aborted') return
      this.destroy(this.failure(end))
    })
  }

  private failure(end: Awaited<RemoteSession['ended']>): AccessError {
    const where = `${this.via.address}:${this.port} in container ${this.target.podName}`
    if (end.kind === 'exit' && end.code === CONNECT_REFUSED_EXIT) {
      return new AccessError(`nothing accepts connections at ${where}`, {
        exitCode: ExitCode.sshUnreachable,
        hint: `is sshd running in the container? (docker logs ${this.target.podName}; akm-access doctor --docker)`,
      })
    }
    if (end.kind === 'exit' && end.code < 128) {
      const message = this.stderrText.trim().split('\n').at(-1) || `the bridge exited with ${end.code}`
      return new AccessError(`cannot reach ${where}: ${message}`, {
        exitCode: ExitCode.sshUnreachable,
        hint: 'the bridge needs bash and cat in the container',
      })
    }
    // Killed (137: the container stopped under it), or the connection to the engine broke.
    const reason =
      end.kind === 'exit'
        ? `the bridge was killed (exit ${end.code}), the container may have stopped`
        : end.kind === 'lost'
          ? end.reason
          : end.kind === 'failed'
            ? end.message
            : 'ended'
    return new AccessError(`the stream to ${where} was lost: ${reason}`, {
      exitCode: ExitCode.connectionLost,
      hint: 'the container may have been stopped or restarted; run the command again',
    })
  }

  override _read(): void {
    this.session.stdout.resume()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.session.stdin.write(chunk, (error) => callback(error ?? null))
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.session.stdin.end()
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.session.abort(error ? 'error' : 'closed')
    callback(error)
  }
}
