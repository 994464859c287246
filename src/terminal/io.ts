import type { Readable, Writable } from 'node:stream'

/**
 * The process's standard streams as a value, so that logic never reads process globals and tests can hand in
 * their own. Data goes to stdout; everything meant for a person goes to stderr.
 */
export interface Io {
  readonly stdin: Readable & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown; isRaw?: boolean }
  readonly stdout: Writable & { isTTY?: boolean; columns?: number; rows?: number }
  readonly stderr: Writable & { isTTY?: boolean }
  readonly env: NodeJS.ProcessEnv
  /** Both ends are terminals: we may prompt and may open a remote TTY. */
  readonly interactive: boolean
  /** Colors on stderr: a terminal, and NO_COLOR not set (https://no-color.org). */
  readonly color: boolean
}

export function processIo(): Io {
  const { stdin, stdout, stderr, env } = process
  return {
    stdin,
    stdout,
    stderr,
    env,
    interactive: Boolean(stdin.isTTY && stderr.isTTY),
    color: colorEnabled(env, Boolean(stderr.isTTY)),
  }
}

export function colorEnabled(env: NodeJS.ProcessEnv, isTTY: boolean): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true
  if (env.TERM === 'dumb') return false
  return isTTY
}

/** Writes a line meant for a person (stderr). */
export function say(io: Io, text: string): void {
  io.stderr.write(text.endsWith('\n') ? text : `${text}\n`)
}
