/**
 * The seams between the parts of the sandbox: the API server (api-server.ts) routes requests; the pod runtime
 * (pod-runtime.ts) runs the management pod's processes and its sshd; the streaming handlers (exec.ts,
 * portforward.ts) speak the Kubernetes wire protocols on top of both.
 */
import type { Socket } from 'node:net'
import type { Readable, Writable } from 'node:stream'

/** A process running "in the pod": in its mount and UTS namespace, as the pod's user, in /work. */
export interface PodProcess {
  readonly pid: number
  /**
   * Standard input. With a TTY, bytes written here are typed into the terminal, and ending it does nothing (the
   * terminal stays open, as with containerd); without, ending it gives the process EOF.
   */
  readonly stdin: Writable
  /** Standard output; with a TTY, the terminal's output (stdout and stderr together). */
  readonly stdout: Readable
  /** Standard error; null with a TTY. */
  readonly stderr: Readable | null
  /** Changes the terminal size (TTY only; a no-op otherwise). */
  resize(cols: number, rows: number): void
  kill(signal?: NodeJS.Signals): void
  /**
   * Resolves when the process has ended and its output has been drained: with stdout (and stderr) being read
   * ('data' listeners), every 'data' and 'end' has been emitted by then, so nothing of the tail is lost. Without a
   * TTY this is child_process's 'close'; with a TTY, unread stdout keeps it pending.
   */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export interface PodExecOptions {
  tty: boolean
  /** Initial terminal size, when tty. */
  cols?: number
  rows?: number
}

/** The credentials sshd accepts for the pod's user. */
export interface SshdAuth {
  /** When set, password login is allowed with this password. */
  password?: string
  /** OpenSSH public key lines (authorized_keys format). */
  authorizedKeys: string[]
  /** `PasswordAuthentication` in sshd_config. */
  passwordAuthentication: boolean
}

export interface PodRuntimeOptions {
  /** The pod's name; it is also the hostname its processes see. */
  name: string
  /** The host folder that the pod's processes see as /work (their home and working directory). */
  workDir: string
  /** Folder for this pod's private files (sshd config, passwd/shadow copies, logs). */
  stateDir: string
  /** Path to the OpenSSH host private key (ed25519) that this pod's sshd uses. */
  hostKeyPath: string
  sshd: SshdAuth
  /** Extra pod ports: port number -> a host loopback port that stands for it (e.g. an echo server). */
  extraPorts?: Record<number, number>
  /** Start sshd (default true). */
  startSshd?: boolean
  /**
   * Where sshd listens. By default on a free port of 127.0.0.1 that stands for port 22 (the Kubernetes sandbox: the
   * API server's port-forward is the only way to it). The Docker sandbox gives each container an address of its own
   * in 127.0.0.0/8 instead, with sshd on that address's port 22: `pickAddress` is asked again if the bind fails.
   */
  sshListen?: { port: number; pickAddress: () => string }
}

/** One management pod: a private mount+UTS namespace holding its processes and a real OpenSSH sshd. */
export interface PodRuntime {
  readonly name: string
  /** The loopback port on which the pod's sshd listens (pod port 22), or undefined while sshd is stopped. */
  readonly sshPort: number | undefined
  /** The loopback address it listens on (127.0.0.1 unless `sshListen` chose another), or undefined while stopped. */
  readonly sshAddress?: string | undefined
  exec(argv: string[], options: PodExecOptions): PodProcess
  /** Opens a TCP connection to a pod port, as the kubelet does for port-forward. Rejects (ECONNREFUSED) if nothing listens. */
  dial(port: number): Promise<Socket>
  startSshd(): Promise<void>
  stopSshd(): Promise<void>
  /** Kills every process of the pod (exec'd ones, sshd and its sessions) and releases the namespace. */
  destroy(): Promise<void>
}

/** What the streaming handlers need from the sandbox for one request. */
export interface PodStreamTarget {
  readonly podName: string
  readonly podUid: string
  readonly namespace: string
  readonly runtime: PodRuntime
}

/** Faults the sandbox can inject into streams (set per scenario, changeable at runtime). */
export interface StreamFaults {
  /** Destroy the TCP connection after this many payload bytes have been sent to the client. */
  dropAfterBytes?: number
  /** Delay every streamed chunk by this many milliseconds. */
  delayMs?: number
  /** Close idle connections after this many milliseconds without traffic (a load balancer's idle timeout). */
  idleTimeoutMs?: number
}
