/**
 * A remote process with a terminal or plain streams, whatever carries it: exec over the Kubernetes API, an SSH
 * channel, or a Docker exec. The local side (terminal-bridge.ts) works the same way for all of them.
 */
import type { Readable, Writable } from 'node:stream'

export interface TerminalSize {
  cols: number
  rows: number
}

export type SessionEnd =
  /** The remote command exited with this status. */
  | { kind: 'exit'; code: number }
  /** The remote command was killed by a signal; `code` is 128 + its number, as shells report it. */
  | { kind: 'signal'; signal: string; code: number }
  /** The remote side reported a failure other than an exit status (e.g. the command could not be started). */
  | { kind: 'failed'; message: string }
  /** The connection broke before the remote command's status arrived. */
  | { kind: 'lost'; reason: string }
  /** We closed it ourselves (the `~.` escape, or a signal to akm-access). */
  | { kind: 'aborted'; reason: string }

export interface RemoteSession {
  /** Remote standard output; with a TTY, the terminal's output. Ends when the remote side has sent everything. */
  readonly stdout: Readable
  /** Remote standard error; undefined with a TTY (the terminal carries it). */
  readonly stderr: Readable | undefined
  /** Remote standard input; `end()` is end-of-file for the remote command. */
  readonly stdin: Writable
  resize(size: TerminalSize): void
  /** Settles once the remote side has ended and all of its output has been pushed to stdout/stderr. */
  readonly ended: Promise<SessionEnd>
  /** Closes the connection now. `ended` then settles with `aborted`. */
  abort(reason: string): void
}

const signalNumbers: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
}

/** 128 + the signal's number, as a shell reports a command killed by it (SIGKILL: 137). */
export function signalExitCode(signal: string): number {
  return 128 + (signalNumbers[signal.replace(/^SIG/, '')] ?? 0)
}
