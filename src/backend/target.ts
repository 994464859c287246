/**
 * The seam between the actions and what carries their bytes: "the management target" is the Kubernetes management
 * pod (reached through the API server) or the docker-compose management container (through the Docker Engine API).
 * Both offer the same four things — run a process, open a TCP stream to a port (sshd's), tell the SSH credentials,
 * and name themselves for messages and for known_hosts — so that shell, ssh and cp are written once. The choice of
 * backend is made once per run (choose.ts).
 */
import type { Duplex } from 'node:stream'
import type { RemoteSession, TerminalSize } from '../session/remote-session.js'
import type { Credentials } from '../target/find-target.js'
import type { PodStreamTarget } from '../tunnel/pod-stream.js'

/**
 * A TCP stream to a port of the target. `target` labels it for the tunnel's events: for a container, `podName` is
 * the container's name and `namespace` its compose project.
 */
export type TargetStream = Duplex & { readonly target: PodStreamTarget }

export interface TargetStreamOptions {
  /** Keepalive interval (WebSocket pings for a pod, TCP keepalive for a container); 0: none; undefined: default. */
  keepaliveMs?: number
  signal?: AbortSignal
}

/** What connecting ssh2 to the target's sshd needs. */
export interface SshTarget {
  /** The pod's or the container's name, for messages. */
  readonly name: string
  /** `pod` or `container`, for messages. */
  readonly noun: 'pod' | 'container'
  readonly knownHostsFile: string
  /** The stable name its host key is stored under in known_hosts. */
  readonly hostKeyAlias: string
  openStream(port: number, options?: TargetStreamOptions): Promise<TargetStream>
}

export interface TargetExecOptions {
  argv: string[]
  tty: boolean
  initialSize?: TerminalSize
  keepaliveMs?: number
  /** Environment of the process (the container only: a pod exec cannot set it; the argv does). */
  env?: string[]
  /** Kubernetes only: told once if the API server cannot pass stdin's end (exec protocol v4). */
  onV4StdinEnd?: () => void
}

export interface ManagementTarget extends SshTarget {
  readonly kind: 'kubernetes' | 'docker'
  /** Runs a process in the target (the pod's container, or the management container). */
  exec(options: TargetExecOptions): Promise<RemoteSession>
  /** The SSH password and key, with where they came from. */
  credentials(): Promise<Credentials>
}
