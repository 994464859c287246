/**
 * Runs a process in the management pod through the API server's exec subresource (WebSocket, v5 preferred) and
 * hands it back as a RemoteSession.
 */
import { AccessError, ExitCode } from '../errors.js'
import type { KubeClient } from '../kube/client.js'
import { openWebSocket } from '../kube/websocket.js'
import type { ManagementPod } from '../target/find-target.js'
import { openKubeExecSession } from './kube-exec.js'
import type { RemoteSession, TerminalSize } from './remote-session.js'

export interface PodExecOptions {
  argv: string[]
  tty: boolean
  initialSize?: TerminalSize
  /** Called once if the server only speaks v4 and our stdin ends (v4 cannot carry end-of-file). */
  onV4StdinEnd?: () => void
  /** WebSocket ping interval; 0 turns pings off. */
  keepaliveMs?: number
}

/** v5 carries stdin's end-of-file; v4 is what API servers before 1.30 offer. */
export const execProtocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io']

export async function openPodExec(
  client: KubeClient,
  target: ManagementPod,
  options: PodExecOptions,
): Promise<RemoteSession> {
  const path = `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod.name)}/exec`
  const query = {
    command: options.argv,
    container: target.container,
    stdin: true,
    stdout: true,
    // With a TTY the terminal carries stderr; kubectl does not ask for it.
    stderr: !options.tty,
    tty: options.tty,
  }
  const { ws, protocol } = await openWebSocket(client, path, query, execProtocols)
  client.logger.debug(`exec into ${target.pod.name}/${target.container}: negotiated ${protocol || '(none)'}`)
  return openKubeExecSession(ws, protocol, {
    tty: options.tty,
    ...(options.initialSize ? { initialSize: options.initialSize } : {}),
    ...(options.onV4StdinEnd ? { onV4StdinEnd: options.onV4StdinEnd } : {}),
    ...(options.keepaliveMs !== undefined ? { pingIntervalMs: options.keepaliveMs } : {}),
  })
}

/** Runs a command without a terminal and collects its output (for small reads such as a password file). */
export async function capturePodCommand(
  client: KubeClient,
  target: ManagementPod,
  argv: string[],
): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const session = await openPodExec(client, target, { argv, tty: false })
  session.stdin.end()
  const chunks: Buffer[] = []
  const errors: Buffer[] = []
  session.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
  session.stderr?.on('data', (chunk: Buffer) => errors.push(chunk))
  // A small read that does not finish (a stuck pod, a command waiting for input) must not hang us: it gets the
  // same deadline as a request to the API server.
  const timeoutMs = client.requestTimeoutMs
  const timer = timeoutMs > 0 ? setTimeout(() => session.abort('timeout'), timeoutMs) : undefined
  const end = await session.ended.finally(() => clearTimeout(timer))
  if (end.kind === 'aborted') {
    throw new AccessError(
      `\`${argv.join(' ')}\` in pod ${target.pod.name} did not finish within ${timeoutMs / 1000}s`,
      {
        exitCode: ExitCode.unreachable,
        hint: 'the pod may be overloaded; raise --request-timeout',
      },
    )
  }
  return {
    exitCode: end.kind === 'exit' ? end.code : end.kind === 'signal' ? end.code : undefined,
    stdout: Buffer.concat(chunks).toString('utf8'),
    stderr: Buffer.concat(errors).toString('utf8'),
  }
}
