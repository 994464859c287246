/**
 * Ctrl-C (and SIGTERM, SIGHUP) during a transfer: instead of dying with a temporary file behind, we abort, let
 * every file in flight remove its temporary copy, and exit as a shell reports the signal: 130, 143, 129.
 */
import { Interrupted, UserCancelled } from '../errors.js'

export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown
  off(signal: NodeJS.Signals, listener: () => void): unknown
}

const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

/** Runs `work` with a signal that aborts on SIGINT/SIGTERM/SIGHUP; listeners are removed afterwards. */
export async function abortOnSignals<T>(
  work: (signal: AbortSignal) => Promise<T>,
  source: SignalSource = process,
): Promise<T> {
  const controller = new AbortController()
  const listeners = signals.map((name) => {
    const listener = () => controller.abort(new Interrupted(name))
    source.on(name, listener)
    return [name, listener] as const
  })
  try {
    return await work(controller.signal)
  } catch (error) {
    // Whatever the aborted work threw (an AbortError, a closed channel), the signal is the reason: its code wins.
    if (controller.signal.aborted && isCancellation(error)) throw controller.signal.reason
    throw error
  } finally {
    for (const [name, listener] of listeners) source.off(name, listener)
  }
}

/** True for what an aborted signal throws (our UserCancelled reason, or a DOM AbortError). */
export function isCancellation(error: unknown): boolean {
  return (
    error instanceof UserCancelled ||
    (error instanceof Error && (error.name === 'AbortError' || (error as { code?: string }).code === 'ABORT_ERR'))
  )
}
