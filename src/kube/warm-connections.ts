/**
 * Connections to the API server opened before the command is even loaded (cli/warm-up.ts), parked here until the
 * client that needs a connection with exactly the same parameters takes one. Their TCP and TLS handshakes — two
 * round trips, 100 ms at 50 ms RTT — then overlap start-up instead of following it. A parked socket never keeps the
 * process alive, is dropped on any error (the client then connects afresh, and reports that error itself), and is
 * closed if nobody takes it within a few seconds.
 */
import type tls from 'node:tls'

const UNCLAIMED_MS = 5_000

interface Parked {
  readonly key: string
  readonly socket: tls.TLSSocket
  readonly drop: () => void
  readonly timer: NodeJS.Timeout
}

const parked: Parked[] = []
/** Handed out by takeConnection, for --debug. */
const handedOut = new WeakSet<object>()
/** The warm-up under way, if one was started: the command's client waits for it rather than racing it. */
let warmingUp: Promise<void> | undefined

/** Records the warm-up (cli/warm-up.ts) so that `warmUpSettled` can wait for its connections to be parked. */
export function startWarmUp(work: Promise<void>): Promise<void> {
  warmingUp = work.catch(() => {})
  return warmingUp
}

/** Resolves once the warm-up, if any, has parked its connections (or given up); never rejects. */
export function warmUpSettled(): Promise<void> {
  return warmingUp ?? Promise.resolve()
}

export function parkConnection(key: string, socket: tls.TLSSocket): void {
  socket.unref()
  const drop = () => {
    release(entry)
    socket.destroy()
  }
  const timer = setTimeout(drop, UNCLAIMED_MS).unref()
  const entry: Parked = { key, socket, drop, timer }
  socket.once('error', drop)
  socket.once('close', drop)
  parked.push(entry)
}

/** A parked connection made with `key` (server, TLS and client-certificate parameters), if one is still usable. */
export function takeConnection(key: string): tls.TLSSocket | undefined {
  for (;;) {
    const entry = parked.find((candidate) => candidate.key === key)
    if (!entry) return undefined
    release(entry)
    if (entry.socket.destroyed) continue
    entry.socket.ref()
    handedOut.add(entry.socket)
    return entry.socket
  }
}

function release(entry: Parked): void {
  const index = parked.indexOf(entry)
  if (index >= 0) parked.splice(index, 1)
  clearTimeout(entry.timer)
  entry.socket.off('error', entry.drop)
  entry.socket.off('close', entry.drop)
}

/** Whether this socket is one that was opened ahead and parked. */
export function wasOpenedAhead(socket: object | null | undefined): boolean {
  return socket != null && handedOut.has(socket)
}

/** Closes every parked connection (for tests, which start each case afresh). */
export function closeParkedConnections(): void {
  for (const entry of [...parked]) entry.drop()
}
