/**
 * Every failure the user can act on is an AccessError: one line that says what is wrong, a hint that says what to
 * do, and an exit code of its own. The CLI renders them in exactly one place (src/cli/render-error.ts).
 *
 * Exit codes follow OpenSSH where a session is involved: the remote command's status passes through unchanged and
 * 255 means the connection was lost. Our own failures before a session starts use the codes below, documented in
 * the README.
 */
export const ExitCode = {
  ok: 0,
  /** An unexpected error: a bug. Rerun with --debug for the stack. */
  internal: 1,
  /** A bad flag, argument or combination of them. */
  usage: 2,
  /** No kubeconfig, a malformed one, or an unknown context. */
  config: 3,
  /** The API server cannot be reached: refused, DNS, timeout, proxy. */
  unreachable: 4,
  /** The API server's certificate was not trusted. */
  tls: 5,
  /** The API server rejected our credentials (401). */
  unauthorized: 6,
  /** RBAC forbids something we need (403). */
  forbidden: 7,
  /** The namespace does not exist. */
  namespaceNotFound: 8,
  /** No management pod (or not the one named) in the namespace. */
  podNotFound: 9,
  /** The management pod exists but is not running and ready. */
  podNotReady: 10,
  /** The Secret with the SSH credentials does not exist. */
  secretNotFound: 11,
  /** The Secret lacks the expected keys, or holds malformed data. */
  badCredentials: 12,
  /** Password login is disabled on this installation (key only). */
  passwordDisabled: 13,
  /** The SSH host key does not match the one we trusted before, or was not accepted. */
  hostKey: 14,
  /** sshd rejected our credentials. */
  sshAuth: 15,
  /** Nothing listens on the pod's SSH port, or the port-forward failed. */
  sshUnreachable: 16,
  /** A local file or port cannot be used (exists, busy, permission). */
  local: 17,
  /** A file in the pod cannot be used (missing, permission, the pod's disk full) or a copy did not verify. */
  remoteFile: 18,
  /** The remote side could not start the command (as a shell's 126). */
  remoteFailed: 126,
  /** The user said no at a prompt, or pressed Ctrl-C there. */
  cancelled: 130,
  /** The connection to the pod was lost in the middle of a session (as ssh does). */
  connectionLost: 255,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface AccessErrorOptions {
  /** What the user can do about it: a command to run, a flag to pass. */
  hint?: string
  exitCode?: number
  cause?: unknown
}

export class AccessError extends Error {
  override readonly name: string = 'AccessError'
  readonly hint: string | undefined
  readonly exitCode: number

  constructor(message: string, options: AccessErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.hint = options.hint
    this.exitCode = options.exitCode ?? ExitCode.internal
  }
}

/**
 * The user cancelled (Ctrl-C at a prompt, or answered no): exit 130 without an error message. A signal from outside
 * (SIGTERM, SIGHUP) cancels the same way with its own code, 128+n, as a shell reports a process it killed.
 */
export class UserCancelled extends AccessError {
  override readonly name: string = 'UserCancelled'
  constructor(message = 'cancelled', exitCode: number = ExitCode.cancelled) {
    super(message, { exitCode })
  }
}

const signalCodes: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 }

/** SIGINT, SIGTERM or SIGHUP ended the command cleanly (terminal restored, remote side told): 130, 143, 129. */
export class Interrupted extends UserCancelled {
  override readonly name = 'Interrupted'
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted (${signal})`, signalCodes[signal] ?? ExitCode.cancelled)
  }
}

/** A remote command ended: its status becomes ours, silently, as ssh and kubectl exec do. */
export class RemoteExit extends Error {
  override readonly name = 'RemoteExit'
  constructor(readonly exitCode: number) {
    super(`remote command exited with status ${exitCode}`)
  }
}

export function isAccessError(error: unknown): error is AccessError {
  return error instanceof AccessError
}

/** Turns anything thrown (including non-Error values such as ws ErrorEvents) into an Error. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown
  if (thrown && typeof thrown === 'object' && 'message' in thrown && typeof thrown.message === 'string') {
    return new Error(thrown.message)
  }
  return new Error(String(thrown))
}
