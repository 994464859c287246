/**
 * `akm-access forward`: a long-running tunnel from 127.0.0.1:PORT to the management pod's sshd (or another port),
 * for ssh, scp, rsync, sftp, VS Code and anything else that speaks TCP. Each accepted connection gets its own pod
 * stream to the pod PodFollower names now; the follower is told when a stream fails and lists pods again, so after
 * a rollout, an eviction or a crash new connections go to the new ready pod without restarting the command, while
 * connections to the pod that died are cut at once (the API server drops their streams; a periodic list catches
 * the ones a vanished node leaves hanging).
 */
import { homedir } from 'node:os'
import type { Deps } from '../deps.js'
import type { DockerTarget } from '../docker/target.js'
import { defaultKnownHostsPath, hostKeyAlias } from '../ssh/known-hosts.js'
import { shellQuote } from '../ssh/ssh-config-file.js'
import type { TargetOptions } from '../target/find-target.js'
import { type FollowerEvent, PodFollower } from '../target/pod-follower.js'
import { type Io, say } from '../terminal/io.js'
import { type ForwardEvent, type LocalForward, startLocalForward } from '../tunnel/local-forward.js'
import { openFollowedStream } from './pod-tunnel.js'

export interface ForwardOptions {
  target: TargetOptions
  /** Preferred local port (another is taken when busy); 0: any free port. */
  localPort: number
  remotePort: number
  /** For the example command line. */
  user: string
  /** How long a new connection waits for a ready pod when the current one is gone. */
  podTimeoutMs: number
  /** Every connection, retry and re-list on stderr. */
  verbose: boolean
  knownHostsFile: string | undefined
  /** Background re-list interval (default 10 s). */
  resyncMs?: number
  /** Keepalive interval of each connection's stream (WebSocket pings, TCP keepalive for a container). */
  keepaliveMs?: number
}

export interface ForwardReady {
  port: number
  podName: string
}

/**
 * Runs until `stop` aborts (Ctrl-C, SIGTERM), then closes the listener and every connection and returns 0: the
 * user asked the tunnel to end, which is its normal end (as `kubectl port-forward`).
 */
export async function runForward(
  options: ForwardOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter' | 'logger'>,
  stop: AbortSignal,
): Promise<number> {
  const { io } = deps
  const backend = await deps.backend()
  if (backend.kind === 'docker') return forwardToContainer(backend.target, options, io, stop)
  const client = await deps.kube()
  const namespace = options.target.namespace ?? client.connection.namespace.value
  const log = eventLog(io, options.verbose)
  // Set once the listener exists: the follower may report gone pods before that (nothing to cut yet).
  let dropConnections: ((pods: string[]) => void) | undefined
  const follower = new PodFollower(client, {
    target: { ...options.target, namespace },
    prompter: deps.prompter,
    resyncMs: options.resyncMs ?? 10_000,
    onEvent: (event) => {
      log.follower(event)
      if (event.kind === 'gone') dropConnections?.(event.pods)
    },
  })
  try {
    const first = await follower.current(Date.now() + options.podTimeoutMs, stop)
    const forward = await startLocalForward({
      port: options.localPort,
      remotePort: options.remotePort,
      connect: (port, signal) =>
        openFollowedStream(client, follower, port, {
          podTimeoutMs: options.podTimeoutMs,
          signal: AbortSignal.any([signal, stop]),
          onRetry: (podName, error) => log.verbose(`stream to ${podName} refused (${error.message}); retrying`),
          ...(options.keepaliveMs !== undefined ? { keepaliveMs: options.keepaliveMs } : {}),
        }),
      // Connections still waiting for a pod when we stop are turned away by us: not worth a line each.
      onConnection: (event) => {
        if (!(stop.aborted && event.kind === 'error')) log.connection(event)
      },
    })
    dropConnections = (pods) => {
      const cut = forward.dropConnections((target) => pods.includes(target.podName))
      if (cut > 0) log.line(`cut ${plural(cut, 'connection')} to ${pods.join(', ')} (gone)`)
    }
    follower.startResync()
    return await serveUntilStopped(forward, options, io, stop, log, {
      target: first.pod.name,
      note: 'follows the management pod',
      hostKeyAlias: hostKeyAlias(client.connection.cluster.server, namespace, first.pod.workload),
      passwordNote:
        'akm-access password; for a plain "ssh akamas", scp, rsync and VS Code: akm-access ssh-config --write',
    })
  } catch (error) {
    // Ctrl-C while waiting for the first pod: a normal end, not an error.
    if (stop.aborted) return 0
    throw error
  } finally {
    follower.stop()
  }
}

/** What the "Forwarding from" lines say about the far end: its name, how it is reached, how to log in. */
interface Announcement {
  target: string
  note: string
  hostKeyAlias: string
  passwordNote: string
}

/**
 * The end both backends share: say where the tunnel goes (and, for sshd, how to connect), serve until `stop`, then
 * close the listener and every connection.
 */
async function serveUntilStopped(
  forward: LocalForward,
  options: ForwardOptions,
  io: Io,
  stop: AbortSignal,
  log: EventLog,
  announcement: Announcement,
): Promise<number> {
  try {
    if (forward.fellBack && options.localPort !== 0) {
      say(io, `port ${options.localPort} is busy; forwarding from ${forward.port} instead`)
    }
    io.stdout.write(
      `Forwarding from 127.0.0.1:${forward.port} -> ${announcement.target}:${options.remotePort} ` +
        `(${announcement.note}; Ctrl-C to stop)\n`,
    )
    if (options.remotePort === 22) {
      const knownHosts = options.knownHostsFile ?? defaultKnownHostsPath(io.env, io.env.HOME || homedir())
      say(
        io,
        `Connect with: ssh -p ${forward.port} -o HostKeyAlias=${announcement.hostKeyAlias} ` +
          `-o UserKnownHostsFile=${shellQuote(knownHosts)} ${options.user}@127.0.0.1\n` +
          `(password: ${announcement.passwordNote})`,
      )
    }
    if (!stop.aborted) await new Promise((resolve) => stop.addEventListener('abort', resolve, { once: true }))
    log.verbose(`stopping: closing ${plural(forward.activeConnections, 'connection')}`)
    return 0
  } finally {
    await forward.close()
  }
}

/**
 * The docker-compose management container: every accepted connection gets its own stream (to the container's
 * address, or bridged through an exec), to the container by name — so it follows restarts and re-creations by
 * compose; while the container is stopped, a connection waits up to --pod-timeout for it.
 */
async function forwardToContainer(
  target: DockerTarget,
  options: ForwardOptions,
  io: Io,
  stop: AbortSignal,
): Promise<number> {
  const log = eventLog(io, options.verbose)
  try {
    // The first stream proves the way to sshd before we say "Forwarding" (and waits for a restarting container).
    const first = await target.openStreamWaiting(options.remotePort, {
      deadline: Date.now() + options.podTimeoutMs,
      signal: stop,
      onRetry: (error) => log.verbose(`stream to ${target.name} refused (${error.message}); retrying`),
    })
    first.destroy()
    const forward = await startLocalForward({
      port: options.localPort,
      remotePort: options.remotePort,
      connect: (port, signal) =>
        target.openStreamWaiting(
          port,
          {
            deadline: Date.now() + options.podTimeoutMs,
            signal: AbortSignal.any([signal, stop]),
            onRetry: (error) => log.verbose(`stream to ${target.name} refused (${error.message}); retrying`),
          },
          options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {},
        ),
      onConnection: (event) => {
        if (!(stop.aborted && event.kind === 'error')) log.connection(event)
      },
    })
    const via = first.via.kind === 'address' ? `${first.via.address}` : 'the Docker engine'
    return await serveUntilStopped(forward, options, io, stop, log, {
      target: target.name,
      note: `through ${via}; follows the management container`,
      hostKeyAlias: target.hostKeyAlias,
      passwordNote: 'akm-access password --docker',
    })
  } catch (error) {
    if (stop.aborted) return 0
    throw error
  }
}

type EventLog = ReturnType<typeof eventLog>

function eventLog(io: Io, verbose: boolean) {
  const line = (text: string) => say(io, `${new Date().toISOString().slice(11, 19)} ${text}`)
  let lastWaiting: string | undefined
  return {
    line,
    verbose(text: string) {
      if (verbose) line(text)
    },
    follower(event: FollowerEvent) {
      if (event.kind === 'pod') {
        lastWaiting = undefined
        // The first pod is in the "Forwarding from" line.
        if (event.from !== undefined) line(`the management pod is now ${event.to} (was ${event.from})`)
      } else if (event.kind === 'waiting') {
        // Said once per reason, not at every poll.
        if (event.reason !== lastWaiting) line(`waiting for a ready management pod: ${event.reason}`)
        lastWaiting = event.reason
      } else if (event.kind === 'gone') {
        if (verbose) line(`${event.pods.join(', ')} gone`)
      } else if (verbose) {
        line(`listing pods failed (keeping the current pod): ${event.message}`)
      }
    },
    connection(event: ForwardEvent) {
      if (event.kind === 'open') {
        if (verbose) line(`#${event.id} ${event.from} -> ${event.target.podName} open`)
      } else if (event.kind === 'close') {
        if (verbose) {
          line(
            `#${event.id} closed after ${(event.durationMs / 1000).toFixed(1)} s ` +
              `(sent ${bytes(event.bytesOut)}, received ${bytes(event.bytesIn)})`,
          )
        }
      } else if (event.target === undefined) {
        // No stream at all: the client was turned away, say why even without --verbose.
        line(`#${event.id} refused: ${event.message}`)
      } else if (verbose) {
        line(`#${event.id} to ${event.target.podName} failed: ${event.message}`)
      }
    },
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

function bytes(count: number): string {
  if (count < 1024) return `${count} B`
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KiB`
  return `${(count / 1024 / 1024).toFixed(1)} MiB`
}
