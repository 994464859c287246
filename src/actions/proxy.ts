/**
 * `akm-access proxy`: OpenSSH's ProxyCommand. Joins stdin and stdout to one pod stream to the management pod's sshd
 * (or --remote-port), so that ssh, scp, sftp, rsync and VS Code reach the pod with no local port at all. Nothing but
 * the stream's bytes is written to stdout; everything else goes to stderr, which ssh shows.
 */
import type { Duplex } from 'node:stream'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import { preloadWebSocket } from '../kube/websocket.js'
import type { TargetOptions } from '../target/find-target.js'
import { PodFollower } from '../target/pod-follower.js'
import type { Io } from '../terminal/io.js'
import type { PodStream } from '../tunnel/pod-stream.js'
import { openFollowedStream } from './pod-tunnel.js'

export interface ProxyOptions {
  target: TargetOptions
  remotePort: number
  /** How long to wait for a ready pod when none is (e.g. during a rollout). */
  podTimeoutMs: number
  /** Keepalive interval of the stream (WebSocket pings, TCP keepalive for a container). */
  keepaliveMs?: number
}

/** Resolves 0 when either side ends; rejects (exit 255) when the pod stream fails. */
export async function runProxy(
  options: ProxyOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'logger'>,
): Promise<number> {
  const backend = await deps.backend()
  if (backend.kind === 'docker') {
    // The container by name, waited for while it restarts, like a pod during a rollout.
    const stream = await backend.target.openStreamWaiting(
      options.remotePort,
      {
        deadline: Date.now() + options.podTimeoutMs,
        onRetry: (error) => deps.logger.debug(`stream to ${backend.target.name} refused (${error.message}); retrying`),
      },
      options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {},
    )
    deps.logger.debug(`proxy: stdin/stdout <-> ${backend.target.name}:${options.remotePort} (${stream.via.kind})`)
    return joinStdio(deps.io, stream)
  }
  const client = await deps.kube()
  const namespace = options.target.namespace ?? client.connection.namespace.value
  const follower = new PodFollower(client, { target: { ...options.target, namespace }, resyncMs: 0 })
  let stream: PodStream
  try {
    const opening = openFollowedStream(client, follower, options.remotePort, {
      podTimeoutMs: options.podTimeoutMs,
      onRetry: (podName, error) => deps.logger.debug(`stream to ${podName} refused (${error.message}); retrying`),
      ...(options.keepaliveMs !== undefined ? { keepaliveMs: options.keepaliveMs } : {}),
    })
    preloadWebSocket() // while the pod list is on the network
    stream = await opening
  } finally {
    follower.stop()
  }
  deps.logger.debug(`proxy: stdin/stdout <-> ${stream.target.podName}:${options.remotePort}`)
  return joinStdio(deps.io, stream)
}

function joinStdio(io: Io, stream: Duplex): Promise<number> {
  const { stdin, stdout } = io
  return new Promise((resolve, reject) => {
    let settled = false
    const finish = (error?: Error) => {
      if (settled) return
      settled = true
      stdin.unpipe(stream)
      // Our reading of stdin would otherwise keep the process alive.
      stdin.destroy()
      stream.destroy()
      if (error) reject(error)
      else resolve(0)
    }
    stream.on('error', (error: Error) => finish(lost(error)))
    // The pod side ended (sshd closed the connection): flush what is left to ssh, then stop.
    stream.on('end', () => stdout.write('', () => finish()))
    stream.on('close', () => {
      if (!stream.errored && !stream.readableEnded) finish()
    })
    // ssh went away (it closes our stdout and sends SIGHUP): nothing more to do.
    stdout.on('error', () => finish())
    stdin.on('error', () => finish())
    // stdin's end ends the stream (the v4 protocol cannot half-close: the connection closes after our last bytes).
    stdin.pipe(stream)
    stream.pipe(stdout, { end: false })
  })
}

function lost(error: Error): AccessError {
  // The kubelet saying that nothing listens on the port (sshd down) is 16, as for ssh and cp; anything else that
  // ends the stream is a lost connection (255, as ssh).
  const unreachable = error instanceof AccessError && error.exitCode === ExitCode.sshUnreachable
  return new AccessError(error.message, {
    exitCode: unreachable ? ExitCode.sshUnreachable : ExitCode.connectionLost,
    ...(error instanceof AccessError && error.hint ? { hint: error.hint } : {}),
  })
}
