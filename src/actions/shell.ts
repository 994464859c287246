/**
 * `akm-access shell`: an interactive login shell in the management pod, in /work — or one command, with pipes that
 * carry bytes exactly and the remote exit status as ours.
 */
import { kubeTarget } from '../backend/kube-target.js'
import type { ManagementTarget } from '../backend/target.js'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import { preloadWebSocket } from '../kube/websocket.js'
import type { SessionEnd } from '../session/remote-session.js'
import { bridgeSession } from '../session/terminal-bridge.js'
import { findManagementPod, type TargetOptions } from '../target/find-target.js'
import { say } from '../terminal/io.js'

export interface ShellOptions {
  target: TargetOptions
  /** The command and its arguments, passed as argv (never re-parsed by a remote shell); empty for a login shell. */
  command: string[]
  /** 'auto': a TTY when stdin and stdout are terminals (as ssh). */
  tty: 'auto' | 'force' | 'never'
  escapeChar: string
  /** WebSocket ping interval in ms (0: none): traffic that keeps idle sessions past load balancers' timeouts. */
  keepaliveMs: number
}

/** Logs in as the image allows: bash when it has it, sh otherwise, starting in /work. $1 is TERM. */
const loginScript =
  'cd /work 2>/dev/null || cd; TERM="$1"; export TERM; ' +
  'if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l'
/** Runs "$@" from /work; with a TTY, $1 is TERM first. */
const commandScript = 'cd /work 2>/dev/null || cd; exec "$@"'
const ttyCommandScript = 'cd /work 2>/dev/null || cd; TERM="$1"; export TERM; shift; exec "$@"'

export function remoteArgv(command: string[], tty: boolean, term: string): string[] {
  if (command.length === 0) return ['sh', '-c', loginScript, 'akm-access', term]
  return tty
    ? ['sh', '-c', ttyCommandScript, 'akm-access', term, ...command]
    : ['sh', '-c', commandScript, 'akm-access', ...command]
}

export async function runShell(
  options: ShellOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter' | 'logger'>,
): Promise<number> {
  const { io } = deps
  const terminal = Boolean(io.stdin.isTTY && io.stdout.isTTY)
  if (options.tty === 'force' && !io.stdin.isTTY) {
    say(io, 'Pseudo-terminal will not be allocated because stdin is not a terminal.')
  }
  const tty = options.tty === 'never' ? false : options.tty === 'force' ? Boolean(io.stdin.isTTY) : terminal
  if (options.command.length === 0 && !tty && io.stdin.isTTY) {
    throw new AccessError('an interactive shell needs a terminal on stdout', {
      exitCode: ExitCode.usage,
      hint: 'run a command instead: akm-access shell -- CMD ARGS',
    })
  }
  const target = await shellTarget(options, deps)
  const term = io.env.TERM && io.env.TERM !== 'dumb' ? io.env.TERM : 'xterm-256color'
  const size = io.stdout.columns && io.stdout.rows ? { cols: io.stdout.columns, rows: io.stdout.rows } : undefined
  const session = await target.exec({
    argv: remoteArgv(options.command, tty, term),
    tty,
    keepaliveMs: options.keepaliveMs,
    ...(tty && size ? { initialSize: size } : {}),
    // A container's exec sets TERM itself (a pod's cannot: the argv's script exports it).
    ...(tty && target.kind === 'docker' ? { env: [`TERM=${term}`] } : {}),
    onV4StdinEnd: () =>
      say(
        io,
        'warning: this API server speaks exec protocol v4, which cannot pass the end of input to the remote command; ' +
          'it keeps waiting for input (Kubernetes >= 1.30 or `akm-access ssh -- CMD` carry it)',
      ),
  })
  const end = await bridgeSession(io, session, { tty, escapeChar: options.escapeChar, hostLabel: target.name })
  return exitCodeOf(end, target.name, target.noun)
}

/** The pod (found by the usual search; no Secret is needed to exec) or the docker-compose container. */
async function shellTarget(
  options: ShellOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter'>,
): Promise<ManagementTarget> {
  const backend = await deps.backend()
  if (backend.kind === 'docker') return backend.target
  const client = await deps.kube()
  const finding = findManagementPod(client, options.target, deps.prompter)
  preloadWebSocket() // for the exec, while the pod list is on the network
  const pod = await finding
  // Known-hosts data is never used by an exec.
  return kubeTarget(client, pod, { knownHostsFile: '', hostKeyAlias: '' })
}

/** The remote status becomes ours; anything that is not a status is a failure, never 0. */
const signalCodes: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGPIPE: 141, SIGTERM: 143 }

export function exitCodeOf(end: SessionEnd, podName: string, noun: 'pod' | 'container' = 'pod'): number {
  switch (end.kind) {
    case 'exit':
    case 'signal':
      return end.code
    case 'aborted':
      if (end.reason === 'escape') return ExitCode.connectionLost
      // A signal to us: 128+n, as a shell reports a command it killed (SIGPIPE: our stdout's reader is gone).
      return signalCodes[end.reason] ?? ExitCode.connectionLost
    case 'failed':
      throw new AccessError(`the command could not run in ${noun} ${podName}: ${end.message}`, {
        exitCode: ExitCode.remoteFailed,
        hint: 'check the command name and that it exists in the management container',
      })
    case 'lost':
      throw new AccessError(`${end.reason} (${noun} ${podName})`, {
        exitCode: ExitCode.connectionLost,
        hint:
          noun === 'pod'
            ? 'the pod may have been restarted or evicted; run the command again, or akm-access doctor'
            : 'the container may have been stopped or restarted; run the command again, or akm-access doctor --docker',
      })
  }
}
