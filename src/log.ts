import { redact } from './redact.js'

/** Diagnostics for --debug, on stderr, with every known secret redacted. */
export interface Logger {
  readonly enabled: boolean
  debug(message: string): void
}

export function createLogger(enabled: boolean, write: (text: string) => void = (t) => process.stderr.write(t)): Logger {
  const start = performance.now()
  return {
    enabled,
    debug(message) {
      if (!enabled) return
      const ms = (performance.now() - start).toFixed(0).padStart(5)
      write(`debug ${ms}ms ${redact(message)}\n`)
    },
  }
}

export const silentLogger: Logger = { enabled: false, debug() {} }
