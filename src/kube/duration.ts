/**
 * Parses --request-timeout with kubectl's rules, so that the same value means the same thing for both tools: a plain
 * integer is seconds, anything else is a Go duration ("30s", "1m30s", "1.5h", "250ms"), and 0 means no timeout.
 */
import { AccessError, ExitCode } from '../errors.js'

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

/** Milliseconds; 0 = no timeout. Throws AccessError (exit `usage`) for anything kubectl would reject. */
export function parseRequestTimeout(text: string, flag = '--request-timeout'): number {
  const value = text.trim()
  const invalid = () =>
    new AccessError(`invalid ${flag} value "${text}"`, {
      exitCode: ExitCode.usage,
      hint: 'use a number of seconds or a number with a unit (e.g. 30s, 2m, 1h); 0 waits forever',
    })
  if (/^\d+$/.test(value)) return Number(value) * 1000
  if (value.startsWith('-')) throw invalid()
  const body = value.startsWith('+') ? value.slice(1) : value
  if (body === '0') return 0
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y
  let total = 0
  let index = 0
  while (index < body.length) {
    part.lastIndex = index
    const match = part.exec(body)
    if (!match) throw invalid()
    total += Number(match[1]) * (UNIT_MS[match[2]!] ?? Number.NaN)
    index = part.lastIndex
  }
  if (index === 0 || !Number.isFinite(total)) throw invalid()
  return total > 0 ? Math.max(1, Math.round(total)) : 0
}

/** 30000 → "30s", 90000 → "1m30s", for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`
  const seconds = Math.round(ms / 1000)
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`
}

/** Any other duration flag (e.g. --keepalive) takes the same syntax as --request-timeout. */
export const parseDuration = parseRequestTimeout
